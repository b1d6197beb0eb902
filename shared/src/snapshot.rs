//! The compiled, immutable form of one config revision that evaluation reads.

use rustc_hash::FxHashMap;

use crate::bucketing::Salt;
use crate::model::{ConfigDocument, Experiment, Variant};
use crate::targeting::{AttrName, CompiledSegment, Cond};

/// A validated, compiled config document. Build it with [`crate::compile`]; evaluate with
/// [`crate::assign`]. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) document: ConfigDocument,
    pub(crate) flags: Vec<CompiledFlag>,
    pub(crate) flag_index: FxHashMap<Box<str>, u32>,
    pub(crate) segments: Vec<CompiledSegment>,
    pub(crate) experiment_flag: FxHashMap<Box<str>, Box<str>>,
    /// Some flag reads profiles.
    pub(crate) reads_profiles: bool,
}

impl Snapshot {
    /// The environment this config belongs to.
    pub fn environment(&self) -> &str {
        &self.document.environment
    }

    /// The config revision.
    pub fn revision(&self) -> u64 {
        self.document.revision
    }

    /// The source document, exactly as compiled.
    pub fn document(&self) -> &ConfigDocument {
        &self.document
    }

    /// Keys of all flags, in document order.
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.document.flags.iter().map(|f| f.key.as_str())
    }

    /// An experiment by key.
    pub fn experiment(&self, key: &str) -> Option<&Experiment> {
        self.document.experiments.iter().find(|e| e.key == key)
    }

    /// The variant a [`crate::VariantRef`] points at (from an assignment on this snapshot).
    pub fn variant(&self, at: crate::VariantRef) -> Option<&Variant> {
        self.flags
            .get(at.flag as usize)?
            .variants
            .get(at.variant as usize)
    }

    /// The compiled flag with this key.
    #[inline]
    pub(crate) fn compiled_flag(&self, key: &str) -> Option<(u32, &CompiledFlag)> {
        let i = *self.flag_index.get(key)?;
        self.flags.get(i as usize).map(|f| (i, f))
    }

    /// Whether evaluating `flag` may read the user's profile (a rule's audience tests a trait or
    /// a large list segment): callers without the user's profile should load it first.
    pub fn flag_reads_profile(&self, flag: &str) -> bool {
        self.compiled_flag(flag)
            .is_some_and(|(_, f)| f.reads_profile)
    }

    /// Whether the user with `profile` is a member of the segment `key` (`None`: no such
    /// segment). Evaluated by the same engine as rules.
    pub fn in_segment(
        &self,
        key: &str,
        user: &crate::User,
        profile: Option<&crate::Profile>,
    ) -> Option<bool> {
        let i = self.document.segments.iter().position(|s| s.key == key)?;
        Some(
            self.segments
                .get(i)?
                .contains(user, profile, &self.segments),
        )
    }

    /// Whether membership of the segment `key` may depend on attributes other than the user key
    /// (which a server that only sees events does not know).
    pub fn segment_reads_attributes(&self, key: &str) -> bool {
        self.document
            .segments
            .iter()
            .position(|s| s.key == key)
            .and_then(|i| self.segments.get(i))
            .is_some_and(|s| {
                s.cond
                    .as_ref()
                    .is_some_and(|c| c.reads_attributes(&self.segments))
            })
    }

    /// Whether any flag reads profiles.
    #[inline]
    pub fn reads_profiles(&self) -> bool {
        self.reads_profiles
    }

    /// The trait definitions.
    pub fn traits(&self) -> &[crate::model::TraitDefinition] {
        &self.document.traits
    }

    /// The key of the flag whose rules an experiment tracks, if any rule references it.
    pub fn experiment_flag(&self, experiment: &str) -> Option<&str> {
        self.experiment_flag.get(experiment).map(|f| &**f)
    }
}

/// Where a rule takes its bucketing unit from.
pub(crate) type Unit = AttrName;

#[derive(Debug)]
pub(crate) struct CompiledFlag {
    pub(crate) enabled: bool,
    pub(crate) variants: Box<[Variant]>,
    pub(crate) default_variant: usize,
    /// User key → variant index.
    pub(crate) overrides: FxHashMap<Box<str>, usize>,
    pub(crate) rules: Box<[CompiledRule]>,
    /// Some rule's audience reads the user's profile (a trait or a large list segment).
    pub(crate) reads_profile: bool,
}

#[derive(Debug)]
pub(crate) enum Serve {
    Fixed(usize),
    /// Split arms in order: `(start, scaled_end, variant)`: the variant owns `[start, scaled_end)`.
    Split(Box<[(u32, u32, usize)]>),
    /// An optimize rule: a split per context.
    Optimize(Box<OptimizeServe>),
}

/// Split arms `(start, scaled_end, variant)`, as [`Serve::Split`] holds them.
pub(crate) type Arms = Box<[(u32, u32, usize)]>;

/// An optimize rule's splits: the first context whose audience matches decides, else `rest`.
#[derive(Debug)]
pub(crate) struct OptimizeServe {
    /// The contexts, in order.
    pub(crate) contexts: Box<[OptimizeContext]>,
    /// The arms of users in no context.
    pub(crate) rest: Arms,
}

/// One context of an optimize rule.
#[derive(Debug)]
pub(crate) struct OptimizeContext {
    /// Its audience (its segment).
    pub(crate) when: Cond,
    /// Its segment key: the label of its users' exposures.
    pub(crate) name: Box<str>,
    /// Its arms.
    pub(crate) arms: Arms,
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub(crate) when: Cond,
    pub(crate) serve: Serve,
    pub(crate) coverage: u32,
    pub(crate) salt: Salt,
    pub(crate) unit: Unit,
    pub(crate) holdout: Option<(Salt, u32)>,
    /// The experiment this rule is tracked by, when it is running.
    pub(crate) experiment: Option<Box<str>>,
    pub(crate) layer: Option<LayerGate>,
    /// Label for reporting: the rule id, or the segment when the audience is exactly one segment.
    pub(crate) label: Option<Box<str>>,
    pub(crate) segment: Option<Box<str>>,
}

/// The slice of a layer an experiment owns: users outside it skip the rule.
#[derive(Debug, Clone)]
pub(crate) struct LayerGate {
    pub(crate) salt: Salt,
    pub(crate) unit: Unit,
    pub(crate) start: u32,
    pub(crate) end: u32,
}
