//! A synthetic shop whose true conversion rates are known: per segment, one rate for the
//! generic homepage and one for the personalized one. The simulator (`examples/simulate.rs`)
//! and the coverage test use it to check that measured lifts recover the truth.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tailor_core::{ConfigDocument, User};

/// The flag the simulation personalizes.
pub const FLAG: &str = "homepage";
/// The experiment tracking it.
pub const EXPERIMENT: &str = "homepage-personalization";
/// The conversion event.
pub const METRIC: &str = "purchase";
/// Share of each segment held out to the generic homepage, in basis points.
pub const HOLDOUT_BP: u32 = 1000;

/// A segment and its true behaviour.
#[derive(Debug, Clone, Copy)]
pub struct SegmentTruth {
    /// Segment key.
    pub key: &'static str,
    /// Value of the `lifecycle` attribute that puts a user in it.
    pub lifecycle: &'static str,
    /// Variant served to it.
    pub variant: &'static str,
    /// Share of visitors in this segment.
    pub share: f64,
    /// True conversion rate with the generic homepage.
    pub generic_rate: f64,
    /// True conversion rate with the personalized homepage.
    pub personalized_rate: f64,
}

impl SegmentTruth {
    /// True absolute lift of personalized over generic.
    pub fn lift(&self) -> f64 {
        self.personalized_rate - self.generic_rate
    }
}

/// The population: three segments with different true lifts (one of them zero).
pub const SEGMENTS: [SegmentTruth; 3] = [
    SegmentTruth {
        key: "beginners",
        lifecycle: "new",
        variant: "beginner-onboarding",
        share: 0.4,
        generic_rate: 0.05,
        personalized_rate: 0.08,
    },
    SegmentTruth {
        key: "active",
        lifecycle: "active",
        variant: "recommendations",
        share: 0.4,
        generic_rate: 0.10,
        personalized_rate: 0.12,
    },
    SegmentTruth {
        key: "lapsed",
        lifecycle: "lapsed",
        variant: "win-back",
        share: 0.2,
        generic_rate: 0.03,
        personalized_rate: 0.03,
    },
];

/// The config: one segment per truth entry, a rule per segment with a 10% generic holdout.
pub fn config() -> Result<ConfigDocument, serde_json::Error> {
    let mut variants = vec![json!({"key": "generic", "value": {"hero": "Welcome"}})];
    let mut segments = Vec::new();
    let mut rules = Vec::new();
    for s in SEGMENTS {
        variants.push(json!({"key": s.variant, "value": {"hero": s.variant}}));
        segments.push(json!({
            "key": s.key,
            "conditions": {"attribute": "lifecycle", "op": "eq", "values": [s.lifecycle]},
        }));
        rules.push(json!({
            "when": {"segment": s.key},
            "variant": s.variant,
            "holdout": {"basis_points": HOLDOUT_BP},
            "experiment": EXPERIMENT,
        }));
    }
    let doc = json!({
        "segments": segments,
        "experiments": [{"key": EXPERIMENT, "status": "running", "primary_metric": METRIC}],
        "flags": [{
            "key": FLAG,
            "type": "json",
            "variants": variants,
            "default_variant": "generic",
            "rules": rules,
        }],
    });
    serde_json::from_value(doc)
}

/// A visitor and the segment they truly belong to.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The user.
    pub user: User,
    /// Index into [`SEGMENTS`].
    pub segment: usize,
}

/// A seeded stream of visitors and their conversion outcomes.
pub struct Population {
    rng: StdRng,
    run: u64,
    next: u64,
}

impl Population {
    /// A population for one seeded run.
    pub fn new(seed: u64) -> Self {
        Population {
            rng: StdRng::seed_from_u64(seed),
            run: seed,
            next: 0,
        }
    }

    /// The next visitor (unique key per run).
    pub fn visitor(&mut self) -> Visitor {
        let x: f64 = self.rng.gen();
        let mut acc = 0.0;
        let mut segment = SEGMENTS.len() - 1;
        for (i, s) in SEGMENTS.iter().enumerate() {
            acc += s.share;
            if x < acc {
                segment = i;
                break;
            }
        }
        self.next += 1;
        let user = User::new(format!("sim-{}-{}", self.run, self.next))
            .with("lifecycle", SEGMENTS[segment].lifecycle);
        Visitor { user, segment }
    }

    /// Whether the visitor converts, given what they were shown.
    pub fn converts(&mut self, visitor: &Visitor, personalized: bool) -> bool {
        let s = SEGMENTS[visitor.segment];
        let p = if personalized {
            s.personalized_rate
        } else {
            s.generic_rate
        };
        self.rng.gen_bool(p)
    }
}
