//! Evaluation: `assign(&snapshot, &user, flag)` → variant, reason and experiment. Pure,
//! infallible and allocation-free.
//!
//! Order: unknown flag → flag off → individual override → rules in order. For a rule whose
//! audience matches: the experiment's layer slice (if any) must contain the user; then the
//! rollout (`bucket < coverage` for a fixed variant, the split ranges for a split) must include
//! the user, otherwise evaluation falls through to the next rule; finally a holdout (its own
//! salt) sends its share of the users to the generic default. No rule left: the default.

use std::ops::Deref;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bucketing::Salt;
use crate::model::{Variant, FULL_COVERAGE};
use crate::profile::Profile;
use crate::snapshot::{CompiledFlag, CompiledRule, Serve, Snapshot, Unit};
use crate::user::AttributeRef;
use crate::user::User;

/// Why a user got their variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// No flag with that key in this config: the caller's default applies.
    UnknownFlag,
    /// The flag is switched off: its default variant.
    FlagOff,
    /// The user key is listed in an individual override.
    Override,
    /// Rule number `rule` (0-based) matched and serves a fixed variant.
    Rule {
        /// Rule index.
        rule: usize,
    },
    /// Rule number `rule` matched and the user's bucket fell in a split arm.
    Split {
        /// Rule index.
        rule: usize,
        /// The user's bucket, `[0, 10000)`.
        bucket: u32,
    },
    /// Rule number `rule` matched but the user is in its holdout: the generic default.
    Holdout {
        /// Rule index.
        rule: usize,
        /// The user's holdout bucket, `[0, 10000)`.
        bucket: u32,
    },
    /// No rule matched (or none included the user in its rollout): the default variant.
    Fallthrough,
    /// Rule number `rule` matched but the user has no usable bucketing attribute (missing, or
    /// not a string or integer): the default variant, and no later rule is tried.
    MissingUnit {
        /// Rule index.
        rule: usize,
    },
}

/// The OpenFeature resolution reasons Tailor reports (OFREP's `reason`, and the SDK's OpenFeature
/// provider): one mapping, so a flag evaluated locally and remotely gives the same reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFeatureReason {
    /// `STATIC`: the flag serves everyone the same value (no rules, no overrides).
    Static,
    /// `DEFAULT`: the flag has rules or overrides but none applied to this user.
    Default,
    /// `TARGETING_MATCH`: an override or a fixed-variant rule chose the value.
    TargetingMatch,
    /// `SPLIT`: a split or holdout bucket chose the value.
    Split,
    /// `DISABLED`: the flag is off.
    Disabled,
    /// `ERROR`: the flag does not exist.
    Error,
}

impl OpenFeatureReason {
    /// The reason for an assignment made in `snapshot`.
    pub fn of(snapshot: &Snapshot, assignment: &Assignment<'_>) -> Self {
        match assignment.reason {
            Reason::FlagOff => OpenFeatureReason::Disabled,
            Reason::Override | Reason::Rule { .. } => OpenFeatureReason::TargetingMatch,
            Reason::Split { .. } | Reason::Holdout { .. } => OpenFeatureReason::Split,
            Reason::Fallthrough => {
                let targets = assignment
                    .variant_ref
                    .and_then(|at| snapshot.flags.get(at.flag as usize))
                    .is_some_and(|f| !f.rules.is_empty() || !f.overrides.is_empty());
                if targets {
                    OpenFeatureReason::Default
                } else {
                    OpenFeatureReason::Static
                }
            }
            Reason::MissingUnit { .. } => OpenFeatureReason::Default,
            Reason::UnknownFlag => OpenFeatureReason::Error,
        }
    }

    /// The reason's OpenFeature name, e.g. `TARGETING_MATCH`.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenFeatureReason::Static => "STATIC",
            OpenFeatureReason::Default => "DEFAULT",
            OpenFeatureReason::TargetingMatch => "TARGETING_MATCH",
            OpenFeatureReason::Split => "SPLIT",
            OpenFeatureReason::Disabled => "DISABLED",
            OpenFeatureReason::Error => "ERROR",
        }
    }
}

/// Where a served variant sits in its snapshot: lets a caller that keeps the snapshot alive
/// separately (the SDK holds a lock-free guard) find the variant again without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct VariantRef {
    pub(crate) flag: u32,
    pub(crate) variant: u32,
}

/// The result of evaluating one flag for one user. Borrows from the snapshot; no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assignment<'s> {
    /// The variant served; `None` only for [`Reason::UnknownFlag`].
    pub variant: Option<&'s Variant>,
    /// Where that variant sits in the snapshot ([`Snapshot::variant`]).
    pub variant_ref: Option<VariantRef>,
    /// Why.
    pub reason: Reason,
    /// The running experiment this assignment is part of: an exposure should be recorded.
    pub experiment: Option<&'s str>,
    /// The matched rule's id, if it has one.
    pub rule_id: Option<&'s str>,
    /// The matched rule's segment, when its audience is exactly one segment; for an optimize
    /// rule, the context the user is in (its segment), else the rule's segment.
    pub segment: Option<&'s str>,
    /// The flag's rules read the user's profile (traits, large lists) and none was given: trait
    /// conditions did not match, as for missing attributes. Load the profile to fix it.
    pub profile_missing: bool,
}

static NULL: Value = Value::Null;

impl<'s> Assignment<'s> {
    /// The served variant's key.
    pub fn variant_key(&self) -> Option<&'s str> {
        self.variant.map(|v| v.key.as_str())
    }

    /// The served payload (`null` for an unknown flag).
    pub fn value(&self) -> &'s Value {
        self.variant.map_or(&NULL, |v| &v.value)
    }

    /// True when a rule served its tailored content; false for the generic default (holdout,
    /// fallthrough, flag off), overrides and unknown flags.
    pub fn personalized(&self) -> bool {
        matches!(self.reason, Reason::Rule { .. } | Reason::Split { .. })
    }

    /// The rule index, for reasons that come from a rule.
    pub fn rule_index(&self) -> Option<usize> {
        match self.reason {
            Reason::Rule { rule }
            | Reason::Split { rule, .. }
            | Reason::Holdout { rule, .. }
            | Reason::MissingUnit { rule } => Some(rule),
            _ => None,
        }
    }
}

/// Evaluates `flag_key` for `user`, without a profile: trait conditions do not match
/// ([`assign_with_profile`]).
pub fn assign<'s>(snapshot: &'s Snapshot, user: &User, flag_key: &str) -> Assignment<'s> {
    assign_with_profile(snapshot, user, None, flag_key)
}

/// Evaluates `flag_key` for `user` whose computed traits and list memberships are `profile`.
pub fn assign_with_profile<'s>(
    snapshot: &'s Snapshot,
    user: &User,
    profile: Option<&Profile>,
    flag_key: &str,
) -> Assignment<'s> {
    assign_lazy(snapshot, user, flag_key, || profile)
}

/// Evaluates `flag_key` for `user`, calling `profile` for the user's profile only when the
/// flag's rules read one (traits, large lists) and a rule is reached: a caller that looks
/// profiles up (the SDK's cache) pays for it only then, without looking the flag up twice.
#[inline]
pub fn assign_lazy<'s, P: Deref<Target = Profile>>(
    snapshot: &'s Snapshot,
    user: &User,
    flag_key: &str,
    profile: impl FnOnce() -> Option<P>,
) -> Assignment<'s> {
    let Some((flag_id, flag)) = snapshot.compiled_flag(flag_key) else {
        return Assignment {
            variant: None,
            variant_ref: None,
            reason: Reason::UnknownFlag,
            experiment: None,
            rule_id: None,
            segment: None,
            profile_missing: false,
        };
    };
    let plain = |variant: usize, reason: Reason, profile_missing: bool| Assignment {
        variant: flag.variants.get(variant),
        variant_ref: Some(VariantRef {
            flag: flag_id,
            variant: variant as u32,
        }),
        reason,
        experiment: None,
        rule_id: None,
        segment: None,
        profile_missing,
    };
    if !flag.enabled {
        return plain(flag.default_variant, Reason::FlagOff, false);
    }
    if !flag.overrides.is_empty() {
        if let Some(&v) = flag.overrides.get(user.key()) {
            return plain(v, Reason::Override, false);
        }
    }
    let held = if flag.reads_profile { profile() } else { None };
    let profile = held.as_deref();
    for (index, rule) in flag.rules.iter().enumerate() {
        if let Some(assignment) = evaluate_rule(snapshot, flag_id, flag, rule, index, user, profile)
        {
            return assignment;
        }
    }
    plain(
        flag.default_variant,
        Reason::Fallthrough,
        flag.reads_profile && profile.is_none(),
    )
}

/// The rule's decision, or `None` to fall through to the next rule.
#[inline]
fn evaluate_rule<'s>(
    snapshot: &'s Snapshot,
    flag_id: u32,
    flag: &'s CompiledFlag,
    rule: &'s CompiledRule,
    index: usize,
    user: &User,
    profile: Option<&Profile>,
) -> Option<Assignment<'s>> {
    if !rule.when.matches(user, profile, &snapshot.segments) {
        return None;
    }
    let decided_in = |variant: usize, reason: Reason, segment: Option<&'s str>| {
        Some(Assignment {
            variant: flag.variants.get(variant),
            variant_ref: Some(VariantRef {
                flag: flag_id,
                variant: variant as u32,
            }),
            reason,
            experiment: match reason {
                Reason::MissingUnit { .. } => None,
                _ => rule.experiment.as_deref(),
            },
            rule_id: rule.label.as_deref(),
            segment,
            profile_missing: flag.reads_profile && profile.is_none(),
        })
    };
    let decided =
        |variant: usize, reason: Reason| decided_in(variant, reason, rule.segment.as_deref());
    let missing_unit = || decided(flag.default_variant, Reason::MissingUnit { rule: index });

    if let Some(gate) = &rule.layer {
        let Some(b) = bucket_of(&gate.salt, &gate.unit, user) else {
            return missing_unit();
        };
        if b < gate.start || b >= gate.end {
            return None;
        }
    }

    // An optimize rule's context labels its exposures, so results and the optimizer see
    // each context apart.
    let mut segment = rule.segment.as_deref();
    let needs_bucket =
        matches!(rule.serve, Serve::Split(_) | Serve::Optimize(_)) || rule.coverage < FULL_COVERAGE;
    let (variant, reason) = if needs_bucket {
        let Some(bucket) = bucket_of(&rule.salt, &rule.unit, user) else {
            return missing_unit();
        };
        match &rule.serve {
            Serve::Fixed(v) => {
                if bucket >= rule.coverage {
                    return None;
                }
                (*v, Reason::Rule { rule: index })
            }
            Serve::Split(arms) => {
                let arm = arms.iter().find(|(s, e, _)| bucket >= *s && bucket < *e)?;
                (
                    arm.2,
                    Reason::Split {
                        rule: index,
                        bucket,
                    },
                )
            }
            Serve::Optimize(optimize) => {
                let arms = match optimize
                    .contexts
                    .iter()
                    .find(|c| c.when.matches(user, profile, &snapshot.segments))
                {
                    Some(context) => {
                        segment = Some(&context.name);
                        &context.arms
                    }
                    None => &optimize.rest,
                };
                let arm = arms.iter().find(|(s, e, _)| bucket >= *s && bucket < *e)?;
                (
                    arm.2,
                    Reason::Split {
                        rule: index,
                        bucket,
                    },
                )
            }
        }
    } else {
        let v = match &rule.serve {
            Serve::Fixed(v) => *v,
            // A split always needs a bucket; kept total for the type checker.
            Serve::Split(arms) => arms.first().map_or(flag.default_variant, |a| a.2),
            Serve::Optimize(o) => o.rest.first().map_or(flag.default_variant, |a| a.2),
        };
        (v, Reason::Rule { rule: index })
    };

    if let Some((salt, basis_points)) = &rule.holdout {
        let Some(bucket) = bucket_of(salt, &rule.unit, user) else {
            return missing_unit();
        };
        if bucket < *basis_points {
            // Held-out users carry their context too: the policy is measured per context.
            return decided_in(
                flag.default_variant,
                Reason::Holdout {
                    rule: index,
                    bucket,
                },
                segment,
            );
        }
    }
    decided_in(variant, reason, segment)
}

/// The bucket of the user's unit, or `None` when the unit attribute is missing or unusable.
#[inline]
fn bucket_of(salt: &Salt, unit: &Unit, user: &User) -> Option<u32> {
    match unit.lookup(user)? {
        AttributeRef::Str(s) => Some(salt.bucket(s)),
        AttributeRef::Number(n) => {
            let mut buf = [0u8; 24];
            let digits = format_integer(n, &mut buf)?;
            Some(crate::bucketing::scale(salt.hash(digits)))
        }
        _ => None,
    }
}

/// Writes an integral number (|n| < 2^53) in decimal, as JavaScript's `String(n)` would.
fn format_integer(n: f64, buf: &mut [u8; 24]) -> Option<&[u8]> {
    const MAX_SAFE: f64 = 9_007_199_254_740_992.0;
    if !n.is_finite() || n.fract() != 0.0 || n.abs() >= MAX_SAFE {
        return None;
    }
    let mut v = n.abs() as u64;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0.0 {
        i -= 1;
        buf[i] = b'-';
    }
    Some(&buf[i..])
}

#[cfg(test)]
mod tests {
    use super::format_integer;

    #[test]
    fn integers_format_like_javascript() {
        let mut buf = [0u8; 24];
        assert_eq!(format_integer(0.0, &mut buf), Some(&b"0"[..]));
        assert_eq!(format_integer(-0.0, &mut buf), Some(&b"0"[..]));
        assert_eq!(format_integer(42.0, &mut buf), Some(&b"42"[..]));
        assert_eq!(format_integer(-7.0, &mut buf), Some(&b"-7"[..]));
        assert_eq!(
            format_integer(9_007_199_254_740_991.0, &mut buf),
            Some(&b"9007199254740991"[..])
        );
        assert_eq!(format_integer(1.5, &mut buf), None);
        assert_eq!(format_integer(f64::NAN, &mut buf), None);
    }
}
