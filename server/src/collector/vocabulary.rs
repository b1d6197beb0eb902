//! What an exposure may name: the flags, variants, rules, experiments and segments of an
//! environment's configs, so that an event sent with a public key cannot invent arms or segment
//! rows (or grow the results' state without bound).
//!
//! The vocabulary is the union of every revision this server has published or adopted since it
//! started: an SDK still evaluating an older revision (a variant since removed, say) is still
//! accepted. An exposure is accepted when, in some such revision, its flag exists, has the
//! variant, has a rule at its rule index, links the experiment from one of its rules, and the
//! segment (if any) is a segment of the environment. Otherwise it is rejected, on its own, with a
//! reason naming the field. After a restart only the current revision is known, so exposures of
//! names removed before the restart are rejected too (SDKs pick up a new revision within
//! seconds of it being published).
//!
//! An exposure naming a revision newer than the vocabulary's is checked only after the
//! environment was re-read from the store (another instance may have published it a moment
//! ago); if it is still newer, it is rejected: no server has published that revision.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use tailor_core::events::Exposure;
use tailor_core::ConfigDocument;

/// The names of one flag across the revisions seen.
#[derive(Debug, Default, Clone)]
struct FlagNames {
    variants: HashSet<String>,
    /// The most rules any revision had.
    rules: usize,
    experiments: HashSet<String>,
}

/// What exposures of one environment may name.
#[derive(Debug, Default, Clone)]
pub struct Vocabulary {
    flags: HashMap<String, FlagNames>,
    segments: HashSet<String>,
    /// The newest revision added.
    revision: u64,
}

impl Vocabulary {
    /// Adds a revision's names.
    pub fn add(&mut self, document: &ConfigDocument) {
        self.revision = self.revision.max(document.revision);
        self.segments
            .extend(document.segments.iter().map(|s| s.key.clone()));
        for flag in &document.flags {
            let names = self.flags.entry(flag.key.clone()).or_default();
            names
                .variants
                .extend(flag.variants.iter().map(|v| v.key.clone()));
            names.rules = names.rules.max(flag.rules.len());
            names
                .experiments
                .extend(flag.rules.iter().filter_map(|r| r.experiment.clone()));
        }
    }

    /// The newest revision whose names are known.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Why `exposure` names something no known revision has, if it does.
    pub fn check(&self, exposure: &Exposure) -> Result<(), String> {
        if exposure.revision > self.revision {
            return Err(format!(
                "revision: {} is newer than any revision of this environment ({})",
                exposure.revision, self.revision
            ));
        }
        let Some(flag) = self.flags.get(&exposure.flag) else {
            return Err(format!(
                "flag: `{}` is not a flag of this environment",
                printable(&exposure.flag)
            ));
        };
        if !flag.variants.contains(&exposure.variant) {
            return Err(format!(
                "variant: `{}` is not a variant of flag `{}`",
                printable(&exposure.variant),
                printable(&exposure.flag)
            ));
        }
        if exposure.rule >= flag.rules {
            return Err(format!(
                "rule: flag `{}` has no rule {} (it has {})",
                printable(&exposure.flag),
                exposure.rule,
                flag.rules
            ));
        }
        if !flag.experiments.contains(&exposure.experiment) {
            return Err(format!(
                "experiment: `{}` is not an experiment of flag `{}`",
                printable(&exposure.experiment),
                printable(&exposure.flag)
            ));
        }
        if let Some(segment) = &exposure.segment {
            if !self.segments.contains(segment) {
                return Err(format!(
                    "segment: `{}` is not a segment of this environment",
                    printable(segment)
                ));
            }
        }
        Ok(())
    }
}

/// At most 64 characters of `name`, control characters escaped, for a rejection reason.
fn printable(name: &str) -> String {
    let shown: String = name.chars().take(64).flat_map(char::escape_debug).collect();
    if name.chars().count() > 64 {
        format!("{shown}…")
    } else {
        shown
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn document(revision: u64, variants: &[&str], segment: &str) -> ConfigDocument {
        let mut document = ConfigDocument::from_yaml(&format!(
            r#"
segments:
  - {{key: {segment}, conditions: {{attribute: plan, op: eq, values: [pro]}}}}
experiments:
  - {{key: hp, status: running}}
flags:
  - key: homepage
    type: string
    variants: [{}]
    default_variant: {}
    rules:
      - when: {{segment: {segment}}}
        variant: {}
        holdout: {{basis_points: 1000}}
        experiment: hp
"#,
            variants
                .iter()
                .map(|v| format!("{{key: {v}, value: x}}"))
                .collect::<Vec<_>>()
                .join(", "),
            variants[0],
            variants[variants.len() - 1],
        ))
        .unwrap();
        document.revision = revision;
        document
    }

    fn exposure(variant: &str, segment: Option<&str>) -> Exposure {
        Exposure {
            id: "e".into(),
            timestamp: 0,
            user_key: "u".into(),
            flag: "homepage".into(),
            variant: variant.into(),
            experiment: "hp".into(),
            rule: 0,
            segment: segment.map(str::to_string),
            personalized: true,
            revision: 2,
            spec_version: 1,
        }
    }

    #[test]
    fn an_exposure_must_name_what_some_revision_defined() {
        let mut vocabulary = Vocabulary::default();
        vocabulary.add(&document(2, &["generic", "beginner"], "beginners"));
        assert_eq!(
            vocabulary.check(&exposure("beginner", Some("beginners"))),
            Ok(())
        );
        assert_eq!(vocabulary.check(&exposure("generic", None)), Ok(()));
        let reason = |e: Exposure| vocabulary.check(&e).unwrap_err();
        assert_eq!(
            reason(exposure("@SUM(9)", None)),
            "variant: `@SUM(9)` is not a variant of flag `homepage`"
        );
        assert_eq!(
            reason(exposure("generic", Some("made-up"))),
            "segment: `made-up` is not a segment of this environment"
        );
        assert!(reason(Exposure {
            flag: "nope".into(),
            ..exposure("generic", None)
        })
        .starts_with("flag: `nope`"));
        assert!(reason(Exposure {
            experiment: "other".into(),
            ..exposure("generic", None)
        })
        .starts_with("experiment: `other` is not an experiment of flag"));
        assert_eq!(
            reason(Exposure {
                rule: 1,
                ..exposure("generic", None)
            }),
            "rule: flag `homepage` has no rule 1 (it has 1)"
        );
        assert!(reason(Exposure {
            revision: 3,
            ..exposure("generic", None)
        })
        .starts_with("revision: 3 is newer"));
        let long = "x".repeat(10_000);
        assert!(
            reason(exposure(&long, None)).len() < 200,
            "reasons stay short"
        );
    }

    #[test]
    fn names_of_earlier_revisions_stay_valid() {
        let mut vocabulary = Vocabulary::default();
        vocabulary.add(&document(2, &["generic", "old"], "beginners"));
        vocabulary.add(&document(3, &["generic", "new"], "returning"));
        assert_eq!(vocabulary.revision(), 3);
        assert_eq!(
            vocabulary.check(&exposure("old", Some("beginners"))),
            Ok(())
        );
        assert_eq!(
            vocabulary.check(&exposure("new", Some("returning"))),
            Ok(())
        );
    }
}
