//! Validation and compilation: the only fallible step between a document and evaluation.
//!
//! [`compile`] checks the whole document and reports every problem with its path (not only the
//! first), then builds a [`Snapshot`] whose rules are pre-parsed so evaluation cannot fail.

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;

use crate::bucketing::Salt;
use crate::error::{ConfigError, Problems};
use crate::model::{ConfigDocument, ExperimentStatus, Flag, Rule, ValueType, FULL_COVERAGE};
use crate::snapshot::{
    Arms, CompiledFlag, CompiledRule, LayerGate, OptimizeContext, OptimizeServe, Serve, Snapshot,
};
use crate::targeting::{AttrName, CompiledSegment, Cond, ConditionCompiler};
use crate::traits::MAX_WINDOW_DAYS;

/// Validates and compiles a document.
///
/// ```
/// let doc = tailor_core::ConfigDocument::from_yaml(r#"
/// flags:
///   - key: banner
///     type: bool
///     variants: [{key: "off", value: false}, {key: "on", value: true}]
///     default_variant: "off"
///     rules:
///       - when: {attribute: country, op: in, values: [US, CA]}
///         variant: "on"
/// "#).unwrap();
/// let snapshot = tailor_core::compile(doc).unwrap();
/// let user = tailor_core::User::new("u1").with("country", "CA");
/// assert_eq!(tailor_core::assign(&snapshot, &user, "banner").variant_key(), Some("on"));
/// ```
pub fn compile(document: ConfigDocument) -> Result<Snapshot, ConfigError> {
    let mut problems = Problems::default();
    let doc = &document;

    check_unique(
        doc.segments.iter().map(|s| s.key.as_str()),
        "segments",
        &mut problems,
    );
    check_unique(
        doc.flags.iter().map(|f| f.key.as_str()),
        "flags",
        &mut problems,
    );
    check_unique(
        doc.experiments.iter().map(|e| e.key.as_str()),
        "experiments",
        &mut problems,
    );
    check_unique(
        doc.layers.iter().map(|l| l.key.as_str()),
        "layers",
        &mut problems,
    );

    check_unique(
        doc.traits.iter().map(|t| t.key.as_str()),
        "traits",
        &mut problems,
    );
    let traits = check_traits(doc, &mut problems);

    // The first definition of a key wins: a later duplicate is the one reported, and references
    // must resolve to the first so that problems behind them (e.g. cycles) are still found.
    let mut segment_index: FxHashMap<&str, usize> = FxHashMap::default();
    for (i, s) in doc.segments.iter().enumerate() {
        segment_index.entry(s.key.as_str()).or_insert(i);
    }

    // Segments, and the segment → segment reference graph for cycle detection.
    let mut segments = Vec::with_capacity(doc.segments.len());
    let mut segment_refs: Vec<Vec<usize>> = Vec::with_capacity(doc.segments.len());
    for s in &doc.segments {
        let path = format!("segments.{}", s.key);
        let inline = s.include.len() + s.exclude.len();
        if inline > MAX_INLINE_KEYS {
            problems.push(
                format!("{path}.include"),
                format!(
                    "{inline} keys in `include`/`exclude`: at most {MAX_INLINE_KEYS} are shipped \
                     in the config; make it a large list segment (`list: true`) and upload the \
                     keys with PUT /api/v1/environments/{{env}}/segments/{}/members",
                    s.key
                ),
            );
        }
        let mut cc = ConditionCompiler {
            segment_index: &segment_index,
            traits: &traits,
            problems: &mut problems,
            referenced: Vec::new(),
        };
        let cond = s
            .conditions
            .as_ref()
            .map(|c| cc.compile(c, &format!("{path}.conditions")));
        segment_refs.push(cc.referenced);
        segments.push(CompiledSegment {
            include: s.include.iter().map(|k| k.as_str().into()).collect(),
            exclude: s.exclude.iter().map(|k| k.as_str().into()).collect(),
            list: s.list.then(|| s.key.as_str().into()),
            cond,
        });
    }
    check_segment_cycles(doc, &segment_refs, &mut problems);

    let experiments: FxHashMap<&str, ExperimentStatus> = doc
        .experiments
        .iter()
        .map(|e| (e.key.as_str(), e.status))
        .collect();
    let layer_gates = compile_layers(doc, &experiments, &mut problems);

    let mut experiment_flag: FxHashMap<Box<str>, Box<str>> = FxHashMap::default();
    let mut flags = Vec::with_capacity(doc.flags.len());
    let mut flag_index = FxHashMap::default();
    for flag in &doc.flags {
        let compiled = compile_flag(
            flag,
            &segment_index,
            &traits,
            &experiments,
            &layer_gates,
            &mut experiment_flag,
            &mut problems,
        );
        flag_index.insert(flag.key.as_str().into(), flags.len() as u32);
        flags.push(compiled);
    }

    check_optimize_metrics(doc, &mut problems);
    for (i, e) in doc.experiments.iter().enumerate() {
        let path = format!("experiments.{}", key_or_index(&e.key, i));
        if e.key.is_empty() {
            problems.push(format!("experiments[{i}].key"), "must not be empty");
        }
        if let Some(control) = &e.control_variant {
            let flag = experiment_flag
                .get(e.key.as_str())
                .and_then(|f| doc.flag(f));
            if let Some(flag) = flag {
                if !flag.variants.iter().any(|v| &v.key == control) {
                    problems.push(
                        format!("{path}.control_variant"),
                        format!("unknown variant `{control}` of flag `{}`", flag.key),
                    );
                }
            }
        }
        if e.attribution_window_hours == Some(0) {
            problems.push(
                format!("{path}.attribution_window_hours"),
                "must be at least 1 (omit it for no window)",
            );
        }
        check_analysis(e, &path, &mut problems);
        if let Some(days) = e.cuped_lookback_days {
            if !(1..=crate::model::MAX_CUPED_LOOKBACK_DAYS).contains(&days) {
                problems.push(
                    format!("{path}.cuped_lookback_days"),
                    format!(
                        "must be 1 to {} days (omit it for {})",
                        crate::model::MAX_CUPED_LOOKBACK_DAYS,
                        crate::model::DEFAULT_CUPED_LOOKBACK_DAYS
                    ),
                );
            }
        }
    }

    if !problems.is_empty() {
        return Err(problems.into_error());
    }
    // After the cycle check: `reads_profile` follows segment references.
    for flag in &mut flags {
        flag.reads_profile = flag.rules.iter().any(|r| r.when.reads_profile(&segments));
    }
    let reads_profiles = flags.iter().any(|f| f.reads_profile);
    Ok(Snapshot {
        reads_profiles,
        document,
        flags,
        flag_index,
        segments,
        experiment_flag,
    })
}

/// An experiment's analysis settings: ratio metrics (keys unique, events named), the metrics
/// it lists (none empty) and its prior (finite mean, positive standard deviation).
fn check_analysis(e: &crate::model::Experiment, path: &str, problems: &mut Problems) {
    check_unique(
        e.ratio_metrics.iter().map(|r| r.key.as_str()),
        &format!("{path}.ratio_metrics"),
        problems,
    );
    for (i, ratio) in e.ratio_metrics.iter().enumerate() {
        let at = format!("{path}.ratio_metrics.{}", key_or_index(&ratio.key, i));
        for (side, measure) in [
            ("numerator", &ratio.numerator),
            ("denominator", &ratio.denominator),
        ] {
            if measure.event.is_empty() {
                problems.push(format!("{at}.{side}.event"), "must name a conversion event");
            }
        }
    }
    for (field, list) in [
        ("secondary_metrics", &e.secondary_metrics),
        ("guardrail_metrics", &e.guardrail_metrics),
    ] {
        for (i, metric) in list.iter().enumerate() {
            if metric.is_empty() {
                problems.push(format!("{path}.{field}[{i}]"), "must not be empty");
            }
        }
    }
    if e.primary_metric.as_deref() == Some("") {
        problems.push(format!("{path}.primary_metric"), "must not be empty");
    }
    if let Some(prior) = e.prior {
        if !prior.mean.is_finite() {
            problems.push(format!("{path}.prior.mean"), "must be a finite number");
        }
        if !(prior.std_dev.is_finite() && prior.std_dev > 0.0) {
            problems.push(
                format!("{path}.prior.std_dev"),
                format!(
                    "must be a positive number, got {} (omit the prior for the flat one)",
                    prior.std_dev
                ),
            );
        }
    }
}

fn key_or_index(key: &str, i: usize) -> String {
    if key.is_empty() {
        format!("[{i}]")
    } else {
        key.to_string()
    }
}

fn check_unique<'a>(keys: impl Iterator<Item = &'a str>, path: &str, problems: &mut Problems) {
    let mut seen = FxHashSet::default();
    for (i, key) in keys.enumerate() {
        if key.is_empty() {
            problems.push(format!("{path}[{i}].key"), "must not be empty");
        } else if !seen.insert(key) {
            problems.push(format!("{path}[{i}].key"), format!("duplicate key `{key}`"));
        }
    }
}

fn check_segment_cycles(doc: &ConfigDocument, refs: &[Vec<usize>], problems: &mut Problems) {
    // Iterative three-colour DFS; each cycle is reported once, at the segment that closes it.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; refs.len()];
    for root in 0..refs.len() {
        if mark[root] != Mark::New {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&child) = refs[node].get(*next) {
                *next += 1;
                match mark[child] {
                    Mark::New => {
                        mark[child] = Mark::Active;
                        stack.push((child, 0));
                    }
                    Mark::Active => {
                        let start = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                        let cycle: Vec<&str> = stack[start..]
                            .iter()
                            .map(|(n, _)| doc.segments[*n].key.as_str())
                            .chain(std::iter::once(doc.segments[child].key.as_str()))
                            .collect();
                        problems.push(
                            format!("segments.{}.conditions", doc.segments[node].key),
                            format!("segment cycle: {}", cycle.join(" -> ")),
                        );
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
}

/// Experiment key → the layer slice it owns.
fn compile_layers(
    doc: &ConfigDocument,
    experiments: &FxHashMap<&str, ExperimentStatus>,
    problems: &mut Problems,
) -> FxHashMap<String, LayerGate> {
    let mut gates = FxHashMap::default();
    for (li, layer) in doc.layers.iter().enumerate() {
        let path = format!("layers.{}", key_or_index(&layer.key, li));
        check_non_empty(layer.salt.as_deref(), &format!("{path}.salt"), problems);
        check_non_empty(
            layer.bucket_by.as_deref(),
            &format!("{path}.bucket_by"),
            problems,
        );
        let salt = match &layer.salt {
            Some(s) => Salt::new(s),
            None => Salt::new(&format!("layer:{}", layer.key)),
        };
        let mut ranges: Vec<(u32, u32, usize)> = Vec::new();
        for (si, slice) in layer.slices.iter().enumerate() {
            let spath = format!("{path}.slices[{si}]");
            if !experiments.contains_key(slice.experiment.as_str()) {
                problems.push(
                    format!("{spath}.experiment"),
                    format!("unknown experiment `{}`", slice.experiment),
                );
            }
            if slice.start >= slice.end || slice.end > FULL_COVERAGE {
                problems.push(
                    spath.clone(),
                    format!(
                        "range [{}, {}) must satisfy 0 <= start < end <= 10000",
                        slice.start, slice.end
                    ),
                );
                continue;
            }
            for &(s, e, other) in &ranges {
                if slice.start < e && s < slice.end {
                    problems.push(
                        spath.clone(),
                        format!(
                            "range [{}, {}) overlaps slices[{other}] [{s}, {e}) of experiment `{}`",
                            slice.start, slice.end, layer.slices[other].experiment
                        ),
                    );
                }
            }
            ranges.push((slice.start, slice.end, si));
            let gate = LayerGate {
                salt: salt.clone(),
                unit: AttrName::new(layer.bucket_by.as_deref().unwrap_or("key")),
                start: slice.start,
                end: slice.end,
            };
            if gates.insert(slice.experiment.clone(), gate).is_some() {
                problems.push(
                    format!("{spath}.experiment"),
                    format!(
                        "experiment `{}` already owns another layer slice",
                        slice.experiment
                    ),
                );
            }
        }
    }
    gates
}

fn check_non_empty(value: Option<&str>, path: &str, problems: &mut Problems) {
    if value == Some("") {
        problems.push(path, "must not be empty when set");
    }
}

fn value_matches_type(value: &Value, ty: ValueType) -> bool {
    match ty {
        ValueType::Bool => value.is_boolean(),
        ValueType::String => value.is_string(),
        ValueType::Number => value.is_number(),
        ValueType::Json => true,
    }
}

/// Most keys a segment may list inline (`include` plus `exclude`); larger lists are uploaded.
pub const MAX_INLINE_KEYS: usize = 10_000;

/// Checks the trait definitions; returns each defined trait's key → whether it is a datetime.
fn check_traits<'d>(doc: &'d ConfigDocument, problems: &mut Problems) -> FxHashMap<&'d str, bool> {
    let mut traits = FxHashMap::default();
    for (i, t) in doc.traits.iter().enumerate() {
        let path = format!("traits.{}", key_or_index(&t.key, i));
        if t.key.is_empty() {
            problems.push(format!("traits[{i}].key"), "must not be empty");
        }
        if t.events.is_empty() {
            problems.push(
                format!("{path}.events"),
                "a trait needs at least one event name",
            );
        }
        for (j, e) in t.events.iter().enumerate() {
            if e.is_empty() {
                problems.push(format!("{path}.events[{j}]"), "must not be empty");
            }
        }
        if let Some(days) = t.window_days {
            if !(1..=MAX_WINDOW_DAYS).contains(&days) {
                problems.push(
                    format!("{path}.window_days"),
                    format!("must be between 1 and {MAX_WINDOW_DAYS} days (omit it for all events), got {days}"),
                );
            }
        }
        traits
            .entry(t.key.as_str())
            .or_insert(t.aggregate.is_datetime());
    }
    traits
}

fn compile_flag(
    flag: &Flag,
    segment_index: &FxHashMap<&str, usize>,
    traits: &FxHashMap<&str, bool>,
    experiments: &FxHashMap<&str, ExperimentStatus>,
    layer_gates: &FxHashMap<String, LayerGate>,
    experiment_flag: &mut FxHashMap<Box<str>, Box<str>>,
    problems: &mut Problems,
) -> CompiledFlag {
    let path = format!("flags.{}", flag.key);
    if flag.variants.is_empty() {
        problems.push(
            format!("{path}.variants"),
            "a flag needs at least one variant",
        );
    }
    check_unique(
        flag.variants.iter().map(|v| v.key.as_str()),
        &format!("{path}.variants"),
        problems,
    );
    for (i, v) in flag.variants.iter().enumerate() {
        if !value_matches_type(&v.value, flag.value_type) {
            // Lowercase the type name only: the value is quoted as written.
            let type_name = format!("{:?}", flag.value_type).to_lowercase();
            problems.push(
                format!("{path}.variants[{i}].value"),
                format!("must be of the flag's type {type_name}, got {}", v.value),
            );
        }
    }
    check_non_empty(flag.salt.as_deref(), &format!("{path}.salt"), problems);
    check_non_empty(
        flag.bucket_by.as_deref(),
        &format!("{path}.bucket_by"),
        problems,
    );

    let variant_index = |key: &str| flag.variants.iter().position(|v| v.key == key);
    let mut resolve = |key: &str, at: String, problems: &mut Problems| -> usize {
        variant_index(key).unwrap_or_else(|| {
            problems.push(at, format!("unknown variant `{key}`"));
            0
        })
    };

    let default_variant = resolve(
        &flag.default_variant,
        format!("{path}.default_variant"),
        problems,
    );

    let mut overrides = FxHashMap::default();
    for (i, o) in flag.overrides.iter().enumerate() {
        let v = resolve(
            &o.variant,
            format!("{path}.overrides[{i}].variant"),
            problems,
        );
        for key in &o.keys {
            if overrides.insert(key.as_str().into(), v).is_some() {
                problems.push(
                    format!("{path}.overrides[{i}].keys"),
                    format!("user `{key}` is overridden more than once"),
                );
            }
        }
    }

    let mut rule_ids = FxHashSet::default();
    for (ri, rule) in flag.rules.iter().enumerate() {
        let Some(id) = rule.id.as_deref() else {
            continue;
        };
        let at = format!("{path}.rules[{ri}].id");
        if id.is_empty() {
            problems.push(at, "must not be empty when set");
        } else if !rule_ids.insert(id) {
            problems.push(at, format!("duplicate rule id `{id}`"));
        }
    }
    let flag_salt = flag.salt.as_deref().unwrap_or(&flag.key);
    let flag_unit = flag.bucket_by.as_deref().unwrap_or("key");
    let mut rules = Vec::with_capacity(flag.rules.len());
    for (ri, rule) in flag.rules.iter().enumerate() {
        let rpath = format!("{path}.rules[{ri}]");
        let ctx = RuleContext {
            flag,
            path: &rpath,
            segment_index,
            traits,
            experiments,
            layer_gates,
            flag_salt,
            flag_unit,
        };
        rules.push(compile_rule(
            rule,
            &ctx,
            &mut resolve,
            experiment_flag,
            problems,
        ));
    }

    CompiledFlag {
        enabled: flag.enabled,
        variants: flag.variants.clone().into_boxed_slice(),
        default_variant,
        overrides,
        rules: rules.into_boxed_slice(),
        reads_profile: false,
    }
}

/// Arms `(start, scaled_end, variant)` for `weights` (basis points, in `variants` order) on a
/// rule of `coverage`, as a split's.
fn arms_of(variants: &[usize], weights: &[u32], coverage: u32) -> Arms {
    let mut start = 0u32;
    variants
        .iter()
        .zip(weights)
        .map(|(&v, &w)| {
            let width = (u64::from(w) * u64::from(coverage.min(FULL_COVERAGE))
                / u64::from(FULL_COVERAGE)) as u32;
            let arm = (start, start.saturating_add(width), v);
            start = start.saturating_add(w);
            arm
        })
        .collect()
}

/// An optimize rule: its checks (README, "Learned personalization") and a split per context.
fn compile_optimize(
    optimize: &crate::model::Optimize,
    rule: &Rule,
    ctx: &RuleContext<'_>,
    resolve: &mut impl FnMut(&str, String, &mut Problems) -> usize,
    problems: &mut Problems,
) -> Serve {
    let path = format!("{}.optimize", ctx.path);
    if optimize.variants.len() < 2 {
        problems.push(
            format!("{path}.variants"),
            "an optimize rule chooses among at least two variants",
        );
    }
    let mut seen = FxHashSet::default();
    let variants: Vec<usize> = optimize
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if !seen.insert(v.as_str()) {
                problems.push(
                    format!("{path}.variants[{i}]"),
                    format!("variant `{v}` appears twice"),
                );
            }
            resolve(v, format!("{path}.variants[{i}]"), problems)
        })
        .collect();
    let arms = optimize.variants.len() as u64;
    if u64::from(optimize.min_weight) * arms > u64::from(FULL_COVERAGE) {
        problems.push(
            format!("{path}.min_weight"),
            format!(
                "{} basis points for each of {arms} variants is more than 10000",
                optimize.min_weight
            ),
        );
    }
    if optimize.update_minutes < 1 {
        problems.push(format!("{path}.update_minutes"), "must be at least 1");
    }
    if rule.holdout.is_none() {
        problems.push(
            format!("{}.holdout", ctx.path),
            "an optimize rule needs a holdout: its users get the generic default, which the \
             learned policy is measured against",
        );
    }
    if rule.experiment.is_none() {
        problems.push(
            format!("{}.experiment", ctx.path),
            "an optimize rule needs an `experiment` that measures it",
        );
    }
    let own_segment = match &rule.when {
        Some(crate::model::Condition::Segment { segment }) => Some(segment.as_str()),
        _ => None,
    };
    let mut context_names = FxHashSet::default();
    for (i, context) in optimize.contexts.iter().enumerate() {
        let at = format!("{path}.contexts[{i}]");
        if context == crate::model::NO_CONTEXT || Some(context.as_str()) == own_segment {
            problems.push(
                at,
                format!("`{context}` cannot be a context: it is every user of the rule"),
            );
        } else if !context_names.insert(context.as_str()) {
            problems.push(at, format!("context `{context}` appears twice"));
        }
    }
    for (i, w) in optimize.weights.iter().enumerate() {
        let at = format!("{path}.weights[{i}]");
        if w.context != crate::model::NO_CONTEXT && !optimize.contexts.contains(&w.context) {
            problems.push(
                format!("{at}.context"),
                format!("`{}` is not one of the rule's contexts", w.context),
            );
        }
        let total: u64 = w.weights.iter().map(|&x| u64::from(x)).sum();
        if w.weights.len() != optimize.variants.len() || total != u64::from(FULL_COVERAGE) {
            problems.push(
                format!("{at}.weights"),
                format!(
                    "needs one weight per variant ({}) summing to 10000, got {} summing to {total}",
                    optimize.variants.len(),
                    w.weights.len()
                ),
            );
        }
    }
    let arms_for = |context: &str| arms_of(&variants, &optimize.weights_of(context), rule.coverage);
    let contexts = optimize
        .contexts
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if !ctx.segment_index.contains_key(name.as_str()) {
                problems.push(
                    format!("{path}.contexts[{i}]"),
                    format!("unknown segment `{name}`"),
                );
                return OptimizeContext {
                    when: Cond::Always,
                    name: name.as_str().into(),
                    arms: arms_for(name),
                };
            }
            let cond = ConditionCompiler {
                segment_index: ctx.segment_index,
                traits: ctx.traits,
                problems,
                referenced: Vec::new(),
            }
            .compile(
                &crate::model::Condition::Segment {
                    segment: name.clone(),
                },
                &format!("{path}.contexts[{i}]"),
            );
            OptimizeContext {
                when: cond,
                name: name.as_str().into(),
                arms: arms_for(name),
            }
        })
        .collect();
    Serve::Optimize(Box::new(OptimizeServe {
        contexts,
        rest: arms_for(crate::model::NO_CONTEXT),
    }))
}

/// Each optimize rule's metric is one its experiment measures, and an experiment measures at
/// most one optimize rule (its cells are split by that rule's update period).
fn check_optimize_metrics(doc: &ConfigDocument, problems: &mut Problems) {
    let mut measured: FxHashSet<&str> = FxHashSet::default();
    for flag in &doc.flags {
        for (ri, rule) in flag.rules.iter().enumerate() {
            let (Some(optimize), Some(key)) = (&rule.optimize, &rule.experiment) else {
                continue;
            };
            if !measured.insert(key.as_str()) {
                problems.push(
                    format!("flags.{}.rules[{ri}].experiment", flag.key),
                    format!(
                        "experiment `{key}` already measures an optimize rule; give each its own \
                         experiment"
                    ),
                );
            }
            let Some(experiment) = doc.experiments.iter().find(|e| &e.key == key) else {
                continue;
            };
            let path = format!("flags.{}.rules[{ri}].optimize.metric", flag.key);
            let Some(metric) = optimize
                .metric
                .as_deref()
                .or(experiment.primary_metric.as_deref())
            else {
                problems.push(
                    path,
                    format!("experiment `{key}` has no primary_metric; name the metric here"),
                );
                continue;
            };
            if optimize.metric.is_some() && !experiment.metrics().contains(&metric) {
                problems.push(
                    path,
                    format!(
                        "`{metric}` is not a metric of experiment `{key}` (its primary, secondary \
                         or guardrail metrics)"
                    ),
                );
            } else if experiment.ratio_metric(metric).is_some() {
                problems.push(
                    path,
                    format!(
                        "`{metric}` is a ratio metric; an optimize rule maximises a conversion event"
                    ),
                );
            }
        }
    }
}

struct RuleContext<'a> {
    flag: &'a Flag,
    path: &'a str,
    segment_index: &'a FxHashMap<&'a str, usize>,
    traits: &'a FxHashMap<&'a str, bool>,
    experiments: &'a FxHashMap<&'a str, ExperimentStatus>,
    layer_gates: &'a FxHashMap<String, LayerGate>,
    flag_salt: &'a str,
    flag_unit: &'a str,
}

fn compile_rule(
    rule: &Rule,
    ctx: &RuleContext<'_>,
    resolve: &mut impl FnMut(&str, String, &mut Problems) -> usize,
    experiment_flag: &mut FxHashMap<Box<str>, Box<str>>,
    problems: &mut Problems,
) -> CompiledRule {
    let path = ctx.path;
    let when = match &rule.when {
        Some(c) => ConditionCompiler {
            segment_index: ctx.segment_index,
            traits: ctx.traits,
            problems,
            referenced: Vec::new(),
        }
        .compile(c, &format!("{path}.when")),
        None => Cond::Always,
    };

    let serve = match (&rule.variant, &rule.split, &rule.optimize) {
        (None, None, Some(optimize)) => compile_optimize(optimize, rule, ctx, resolve, problems),
        (Some(v), None, None) => Serve::Fixed(resolve(v, format!("{path}.variant"), problems)),
        (None, Some(split), None) => {
            let spath = format!("{path}.split");
            if split.is_empty() {
                problems.push(spath.clone(), "a split needs at least one variant");
            }
            let total: u64 = split.iter().map(|w| u64::from(w.weight)).sum();
            if total != u64::from(FULL_COVERAGE) && !split.is_empty() {
                problems.push(
                    spath.clone(),
                    format!("weights must sum to 10000, got {total}"),
                );
            }
            let mut seen = FxHashSet::default();
            let mut start = 0u32;
            let mut arms = Vec::with_capacity(split.len());
            for (i, w) in split.iter().enumerate() {
                let v = resolve(&w.variant, format!("{spath}[{i}].variant"), problems);
                if !seen.insert(w.variant.as_str()) {
                    problems.push(
                        format!("{spath}[{i}].variant"),
                        format!("variant `{}` appears twice in the split", w.variant),
                    );
                }
                let width = (u64::from(w.weight) * u64::from(rule.coverage.min(FULL_COVERAGE))
                    / u64::from(FULL_COVERAGE)) as u32;
                arms.push((start, start.saturating_add(width), v));
                start = start.saturating_add(w.weight);
            }
            Serve::Split(arms.into_boxed_slice())
        }
        (None, None, None) => {
            problems.push(
                path,
                "a rule needs a `variant`, a `split` or an `optimize` to serve",
            );
            Serve::Fixed(0)
        }
        _ => {
            problems.push(
                path,
                "set one of `variant`, `split` and `optimize`, not several",
            );
            Serve::Fixed(0)
        }
    };

    if rule.coverage > FULL_COVERAGE {
        problems.push(
            format!("{path}.coverage"),
            format!(
                "must be between 0 and 10000 basis points, got {}",
                rule.coverage
            ),
        );
    }
    check_non_empty(rule.salt.as_deref(), &format!("{path}.salt"), problems);
    check_non_empty(
        rule.bucket_by.as_deref(),
        &format!("{path}.bucket_by"),
        problems,
    );
    let salt_text = rule.salt.as_deref().unwrap_or(ctx.flag_salt);
    let unit = AttrName::new(rule.bucket_by.as_deref().unwrap_or(ctx.flag_unit));

    let holdout = rule.holdout.as_ref().map(|h| {
        if h.basis_points > FULL_COVERAGE {
            problems.push(
                format!("{path}.holdout.basis_points"),
                format!("must be between 0 and 10000, got {}", h.basis_points),
            );
        }
        check_non_empty(h.salt.as_deref(), &format!("{path}.holdout.salt"), problems);
        if rule.experiment.is_none() {
            problems.push(
                format!("{path}.holdout"),
                "a holdout needs an `experiment` on the rule to measure it",
            );
        }
        let salt = match &h.salt {
            Some(s) => Salt::new(s),
            None => Salt::new(&format!("{salt_text}:holdout")),
        };
        (salt, h.basis_points)
    });

    let mut running_experiment = None;
    let mut layer = None;
    if let Some(key) = &rule.experiment {
        match ctx.experiments.get(key.as_str()) {
            None => problems.push(
                format!("{path}.experiment"),
                format!("unknown experiment `{key}`"),
            ),
            Some(status) => {
                if *status == ExperimentStatus::Running {
                    running_experiment = Some(key.as_str().into());
                }
                let owner = experiment_flag
                    .entry(key.as_str().into())
                    .or_insert_with(|| ctx.flag.key.as_str().into());
                if **owner != *ctx.flag.key {
                    problems.push(
                        format!("{path}.experiment"),
                        format!("experiment `{key}` is already used by flag `{owner}`"),
                    );
                }
                layer = ctx.layer_gates.get(key.as_str()).cloned();
            }
        }
    }

    let segment = match &rule.when {
        Some(crate::model::Condition::Segment { segment }) => Some(segment.as_str().into()),
        _ => None,
    };
    CompiledRule {
        when,
        serve,
        coverage: rule.coverage.min(FULL_COVERAGE),
        salt: Salt::new(salt_text),
        unit,
        holdout,
        experiment: running_experiment,
        layer,
        label: rule.id.as_deref().map(Into::into),
        segment,
    }
}
