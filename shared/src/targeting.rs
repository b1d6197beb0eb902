//! Targeting: conditions compiled into fast, pre-parsed forms, and matched against a user.
//!
//! Compiling turns every operand into its typed form once (regexes built, semvers and datetimes
//! parsed, case-insensitive operands lowercased) so matching never parses operands, never
//! fails and never allocates. A user attribute of the wrong type simply does not match, with one
//! deliberate exception: the numeric operators (`lt`, `lte`, `gt`, `gte`) also accept a string that
//! parses as a number (as GrowthBook does), because numbers often arrive as strings from forms and
//! URLs; `eq`/`in` stay type-strict (`"30"` is not `30`).

use regex::Regex;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;

use crate::error::Problems;
use crate::model::{AttributeCondition, Condition, Operator, TraitCondition};
use crate::profile::Profile;
use crate::traits::TraitValue;
use crate::user::{parse_rfc3339_millis, same, AttributeRef, User};

/// Which attribute a condition reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AttrName {
    /// The user key.
    Key,
    /// A named attribute.
    Named(Box<str>),
}

impl AttrName {
    pub(crate) fn new(name: &str) -> Self {
        if name == "key" {
            AttrName::Key
        } else {
            AttrName::Named(name.into())
        }
    }

    #[inline(always)]
    pub(crate) fn lookup<'u>(&self, user: &'u User) -> Option<AttributeRef<'u>> {
        match self {
            AttrName::Key => Some(AttributeRef::Str(user.key())),
            AttrName::Named(name) => user.get(name),
        }
    }
}

/// A string of at most 16 bytes as its length and two words read from it, so that two such
/// strings are equal exactly when their keys are. An `eq`/`in` test keys its operands when it
/// is compiled and the attribute once per evaluation, then compares integers: no `memcmp`, and
/// no per-operand dispatch on the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShortKey {
    len: u64,
    head: u64,
    tail: u64,
}

impl ShortKey {
    /// The key of `s`, or `None` when it is longer than 16 bytes. The two reads overlap (as in
    /// [`same`]) and together cover every byte.
    #[inline(always)]
    pub(crate) fn of(s: &[u8]) -> Option<ShortKey> {
        fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
            let mut w = [0u8; N];
            if let Some(bytes) = s.get(at..at + N) {
                w.copy_from_slice(bytes);
            }
            w
        }
        let n = s.len();
        let (head, tail) = match n {
            0 => (0, 0),
            1 => (u64::from(s.first().copied().unwrap_or_default()), 0),
            2..=3 => (
                u64::from(u16::from_le_bytes(word(s, 0))),
                u64::from(s.last().copied().unwrap_or_default()),
            ),
            4..=7 => (
                u64::from(u32::from_le_bytes(word(s, 0))),
                u64::from(u32::from_le_bytes(word(s, n - 4))),
            ),
            8..=16 => (
                u64::from_le_bytes(word(s, 0)),
                u64::from_le_bytes(word(s, n - 8)),
            ),
            _ => return None,
        };
        Some(ShortKey {
            len: n as u64,
            head,
            tail,
        })
    }

    /// The keys of the operands that have one (at most 16 bytes).
    pub(crate) fn all(operands: &[Box<str>]) -> Box<[ShortKey]> {
        operands
            .iter()
            .filter_map(|o| ShortKey::of(o.as_bytes()))
            .collect()
    }

    /// Whether `s` equals one of `operands`, whose keys are `short`.
    #[inline(always)]
    pub(crate) fn any(s: &str, operands: &[Box<str>], short: &[ShortKey]) -> bool {
        match ShortKey::of(s.as_bytes()) {
            Some(key) => short.contains(&key),
            None => operands.iter().any(|o| **o == *s),
        }
    }
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) enum Cond {
    /// Matches everyone (a rule without `when`).
    Always,
    All(Box<[Cond]>),
    Any(Box<[Cond]>),
    Not(Box<Cond>),
    /// Membership of the segment at this index of the snapshot's segment table.
    Segment(usize),
    Attr {
        name: AttrName,
        test: Test,
    },
    /// A test on a computed trait, read from the user's profile.
    Trait {
        key: Box<str>,
        test: Test,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
    Eq,
}

impl Cmp {
    #[inline]
    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        matches!(
            (self, ord),
            (Cmp::Lt, Less)
                | (Cmp::Lte, Less | Equal)
                | (Cmp::Gt, Greater)
                | (Cmp::Gte, Greater | Equal)
                | (Cmp::Eq, Equal)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

/// A compiled attribute test. Negative operators compile to `Not(positive)`.
#[derive(Debug)]
pub(crate) enum Test {
    Exists,
    /// `eq` / `in` over typed operands; strings are pre-lowercased when `ignore_case`.
    Equals {
        strings: Box<[Box<str>]>,
        /// The [`ShortKey`]s of the strings of at most 16 bytes (case-sensitive tests only).
        short: Box<[ShortKey]>,
        numbers: Box<[f64]>,
        bools: Box<[bool]>,
        ignore_case: bool,
    },
    Str {
        op: StrOp,
        needles: Box<[Box<str>]>,
        ignore_case: bool,
    },
    Regex(Box<[Regex]>),
    Number {
        cmp: Cmp,
        value: f64,
    },
    Semver {
        cmp: Cmp,
        version: semver::Version,
    },
    Datetime {
        cmp: Cmp,
        millis: i64,
    },
    ContainsAny(Box<[Box<str>]>),
    ContainsAll(Box<[Box<str>]>),
}

/// A compiled segment.
#[derive(Debug)]
pub(crate) struct CompiledSegment {
    pub(crate) include: FxHashSet<Box<str>>,
    pub(crate) exclude: FxHashSet<Box<str>>,
    /// A large list segment: its key, looked up in the user's profile.
    pub(crate) list: Option<Box<str>>,
    pub(crate) cond: Option<Cond>,
}

impl CompiledSegment {
    /// Whether membership may read the user's profile. Segment cycles are rejected at compile
    /// time, so this terminates.
    pub(crate) fn reads_profile(&self, segments: &[CompiledSegment]) -> bool {
        self.list.is_some()
            || self
                .cond
                .as_ref()
                .is_some_and(|c| c.reads_profile(segments))
    }

    pub(crate) fn contains(
        &self,
        user: &User,
        profile: Option<&Profile>,
        segments: &[CompiledSegment],
    ) -> bool {
        if !self.include.is_empty() && self.include.contains(user.key()) {
            return true;
        }
        if !self.exclude.is_empty() && self.exclude.contains(user.key()) {
            return false;
        }
        if let Some(list) = &self.list {
            if profile.is_some_and(|p| p.in_list(list)) {
                return true;
            }
        }
        self.cond
            .as_ref()
            .is_some_and(|c| c.matches(user, profile, segments))
    }
}

impl Cond {
    /// Whether `user` matches. Segment cycles are rejected at compile time, so this terminates.
    pub(crate) fn matches(
        &self,
        user: &User,
        profile: Option<&Profile>,
        segments: &[CompiledSegment],
    ) -> bool {
        match self {
            Cond::Always => true,
            Cond::All(children) => children
                .iter()
                .all(|c| c.matches_child(user, profile, segments)),
            Cond::Any(children) => children
                .iter()
                .any(|c| c.matches_child(user, profile, segments)),
            Cond::Not(child) => !child.matches(user, profile, segments),
            Cond::Segment(i) => segments
                .get(*i)
                .is_some_and(|s| s.contains(user, profile, segments)),
            Cond::Attr { name, test } => Cond::attribute_matches(name, test, user),
            Cond::Trait { key, test } => match profile.and_then(|p| p.trait_value(key)) {
                Some(TraitValue::Number(n)) => test.matches(AttributeRef::Number(n)),
                Some(TraitValue::Datetime(ms)) => test.matches(AttributeRef::Datetime(ms)),
                None => false,
            },
        }
    }

    /// Whether matching may read an attribute other than the key.
    pub(crate) fn reads_attributes(&self, segments: &[CompiledSegment]) -> bool {
        match self {
            Cond::Always | Cond::Trait { .. } => false,
            Cond::Attr { name, .. } => *name != AttrName::Key,
            Cond::All(children) | Cond::Any(children) => {
                children.iter().any(|c| c.reads_attributes(segments))
            }
            Cond::Not(child) => child.reads_attributes(segments),
            Cond::Segment(i) => segments.get(*i).is_some_and(|s| {
                s.cond
                    .as_ref()
                    .is_some_and(|c| c.reads_attributes(segments))
            }),
        }
    }

    /// Whether matching may read the user's profile (a trait, or a large list segment).
    pub(crate) fn reads_profile(&self, segments: &[CompiledSegment]) -> bool {
        match self {
            Cond::Always | Cond::Attr { .. } => false,
            Cond::Trait { .. } => true,
            Cond::All(children) | Cond::Any(children) => {
                children.iter().any(|c| c.reads_profile(segments))
            }
            Cond::Not(child) => child.reads_profile(segments),
            Cond::Segment(i) => segments.get(*i).is_some_and(|s| s.reads_profile(segments)),
        }
    }

    /// [`Cond::matches`] for a child of `all`/`any`: attribute tests (nearly every child) go
    /// straight to [`Cond::attribute_matches`] instead of through another call to `matches`.
    #[inline(always)]
    fn matches_child(
        &self,
        user: &User,
        profile: Option<&Profile>,
        segments: &[CompiledSegment],
    ) -> bool {
        match self {
            Cond::Attr { name, test } => Cond::attribute_matches(name, test, user),
            other => other.matches(user, profile, segments),
        }
    }

    /// One attribute test: the lookup and the test in one function (one call, one stack frame;
    /// measured fewer instructions than inlining it into `matches` or calling the two apart).
    #[inline(never)]
    fn attribute_matches(name: &AttrName, test: &Test, user: &User) -> bool {
        match name.lookup(user) {
            None => false,
            Some(value) => test.matches(value),
        }
    }
}

impl Test {
    #[inline]
    fn matches(&self, value: AttributeRef<'_>) -> bool {
        match self {
            Test::Exists => true,
            Test::ContainsAny(items) => match value {
                // Each list item is decoded once and compared with every operand.
                AttributeRef::List(list) => list.iter().any(|v| items.iter().any(|i| same(v, i))),
                AttributeRef::Str(s) => items.iter().any(|i| same(i, s)),
                _ => false,
            },
            Test::ContainsAll(items) => match value {
                AttributeRef::List(list) => items.iter().all(|i| list.iter().any(|v| same(v, i))),
                AttributeRef::Str(s) => items.iter().all(|i| same(i, s)),
                _ => false,
            },
            // A list attribute matches a scalar test when any element does (LaunchDarkly's rule).
            _ => match value {
                AttributeRef::List(list) => list
                    .iter()
                    .any(|s| self.matches_scalar(AttributeRef::Str(s))),
                scalar => self.matches_scalar(scalar),
            },
        }
    }

    #[inline]
    fn matches_scalar(&self, value: AttributeRef<'_>) -> bool {
        match (self, value) {
            (
                Test::Equals {
                    strings,
                    short,
                    ignore_case,
                    ..
                },
                AttributeRef::Str(s),
            ) => {
                if *ignore_case {
                    strings.iter().any(|n| text::eq_ci(s, n))
                } else {
                    ShortKey::any(s, strings, short)
                }
            }
            (Test::Equals { numbers, .. }, AttributeRef::Number(x)) => numbers.contains(&x),
            (Test::Equals { bools, .. }, AttributeRef::Bool(b)) => bools.contains(&b),
            (
                Test::Str {
                    op,
                    needles,
                    ignore_case,
                },
                AttributeRef::Str(s),
            ) => needles.iter().any(|n| text::test(*op, s, n, *ignore_case)),
            (Test::Regex(res), AttributeRef::Str(s)) => res.iter().any(|r| r.is_match(s)),
            (Test::Number { cmp, value }, v) => match number_of(v) {
                Some(x) => x.partial_cmp(value).is_some_and(|o| cmp.holds(o)),
                None => false,
            },
            (Test::Semver { cmp, version }, AttributeRef::Str(s)) => {
                semver_text::cmp_precedence(s, version).is_some_and(|o| cmp.holds(o))
            }
            (Test::Datetime { cmp, millis }, v) => match millis_of(v) {
                Some(x) => cmp.holds(x.cmp(millis)),
                None => false,
            },
            _ => false,
        }
    }
}

/// SemVer 2.0.0 precedence of an attribute string against a compiled version, without
/// allocating. (`semver::Version::parse` heap-allocates pre-release and build identifiers longer
/// than 8 bytes, e.g. `2.3.0+build.20240501`, which the hot path must not do.) Accepts exactly
/// what `semver::Version::parse` accepts, after an optional leading `v`.
mod semver_text {
    use std::cmp::Ordering;

    pub(super) fn cmp_precedence(text: &str, version: &semver::Version) -> Option<Ordering> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (text, None),
        };
        if build.is_some_and(|b| !valid_identifiers(b, false)) {
            return None;
        }
        // The core has no `-`, so the first one starts the pre-release.
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let mut parts = core.split('.');
        let major = number(parts.next()?)?;
        let minor = number(parts.next()?)?;
        let patch = number(parts.next()?)?;
        if parts.next().is_some() || pre.is_some_and(|p| !valid_identifiers(p, true)) {
            return None;
        }
        let core_order = (major, minor, patch).cmp(&(version.major, version.minor, version.patch));
        Some(core_order.then_with(|| cmp_pre(pre.unwrap_or(""), version.pre.as_str())))
    }

    /// A numeric core component: digits, no leading zero, fits in u64.
    fn number(s: &str) -> Option<u64> {
        if s.is_empty()
            || !s.bytes().all(|b| b.is_ascii_digit())
            || (s.len() > 1 && s.starts_with('0'))
        {
            return None;
        }
        s.parse().ok()
    }

    /// Dot-separated, non-empty `[0-9A-Za-z-]` identifiers; numeric pre-release identifiers
    /// have no leading zero.
    fn valid_identifiers(s: &str, pre_release: bool) -> bool {
        s.split('.').all(|id| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !(pre_release && is_numeric(id) && id.len() > 1 && id.starts_with('0'))
        })
    }

    fn is_numeric(id: &str) -> bool {
        id.bytes().all(|b| b.is_ascii_digit())
    }

    /// Pre-release precedence (SemVer 2.0.0 §11); the empty string is a release.
    fn cmp_pre(a: &str, b: &str) -> Ordering {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) => {}
        }
        let mut left = a.split('.');
        let mut right = b.split('.');
        loop {
            let order = match (left.next(), right.next()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => match (is_numeric(x), is_numeric(y)) {
                    // No leading zeros, so a longer number is a larger one.
                    (true, true) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                },
            };
            if order != Ordering::Equal {
                return order;
            }
        }
    }
}

fn number_of(v: AttributeRef<'_>) -> Option<f64> {
    match v {
        AttributeRef::Number(x) => Some(x),
        AttributeRef::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn millis_of(v: AttributeRef<'_>) -> Option<i64> {
    match v {
        AttributeRef::Datetime(ms) => Some(ms),
        AttributeRef::Number(x) if x.is_finite() => Some(x as i64),
        AttributeRef::Str(s) => parse_rfc3339_millis(s).ok(),
        _ => None,
    }
}

/// Case-insensitive string tests without allocation (the needle is already lowercase).
mod text {
    use super::StrOp;

    fn lower(s: &str) -> impl DoubleEndedIterator<Item = char> + '_ {
        s.chars().flat_map(char::to_lowercase)
    }

    /// Lowercases an operand at compile time exactly as [`lower`] lowercases the attribute,
    /// one char at a time. (`str::to_lowercase` is context-sensitive: it turns a word-final `Σ`
    /// into `ς`, which the per-char haystack never produces, so `"ΟΔΟΣ"` would not equal itself.)
    pub(super) fn lowercase(s: &str) -> Box<str> {
        lower(s).collect::<String>().into_boxed_str()
    }

    pub(super) fn eq_ci(s: &str, lowered_needle: &str) -> bool {
        if s.is_ascii() {
            return s.eq_ignore_ascii_case(lowered_needle);
        }
        lower(s).eq(lowered_needle.chars())
    }

    fn starts_with_ci(s: &str, needle: &str) -> bool {
        let mut hay = lower(s);
        needle.chars().all(|c| hay.next() == Some(c))
    }

    fn ends_with_ci(s: &str, needle: &str) -> bool {
        let mut hay = s.chars().rev().flat_map(|c| c.to_lowercase().rev());
        needle.chars().rev().all(|c| hay.next() == Some(c))
    }

    fn contains_ci(s: &str, needle: &str) -> bool {
        s.char_indices()
            .any(|(i, _)| starts_with_ci(&s[i..], needle))
            || needle.is_empty()
    }

    pub(super) fn test(op: StrOp, s: &str, needle: &str, ignore_case: bool) -> bool {
        match (op, ignore_case) {
            (StrOp::Contains, false) => s.contains(needle),
            (StrOp::Contains, true) => contains_ci(s, needle),
            (StrOp::StartsWith, false) => s.starts_with(needle),
            (StrOp::StartsWith, true) => starts_with_ci(s, needle),
            (StrOp::EndsWith, false) => s.ends_with(needle),
            (StrOp::EndsWith, true) => ends_with_ci(s, needle),
        }
    }
}

/// Compiles conditions, recording problems with their paths.
pub(crate) struct ConditionCompiler<'a> {
    pub(crate) segment_index: &'a FxHashMap<&'a str, usize>,
    /// Defined traits: key → whether its value is a datetime.
    pub(crate) traits: &'a FxHashMap<&'a str, bool>,
    pub(crate) problems: &'a mut Problems,
    /// Segment keys referenced by the conditions compiled so far (for cycle detection).
    pub(crate) referenced: Vec<usize>,
}

impl ConditionCompiler<'_> {
    pub(crate) fn compile(&mut self, cond: &Condition, path: &str) -> Cond {
        match cond {
            Condition::All { all } => Cond::All(
                all.iter()
                    .enumerate()
                    .map(|(i, c)| self.compile(c, &format!("{path}.all[{i}]")))
                    .collect(),
            ),
            Condition::Any { any } => Cond::Any(
                any.iter()
                    .enumerate()
                    .map(|(i, c)| self.compile(c, &format!("{path}.any[{i}]")))
                    .collect(),
            ),
            Condition::Not { not } => {
                Cond::Not(Box::new(self.compile(not, &format!("{path}.not"))))
            }
            Condition::Segment { segment } => match self.segment_index.get(segment.as_str()) {
                Some(&i) => {
                    self.referenced.push(i);
                    Cond::Segment(i)
                }
                None => {
                    self.problems.push(
                        format!("{path}.segment"),
                        format!("unknown segment `{segment}`"),
                    );
                    Cond::Always
                }
            },
            Condition::Attribute(a) => self.attribute(a, path),
            Condition::Trait(t) => self.trait_test(t, path),
        }
    }

    fn trait_test(&mut self, t: &TraitCondition, path: &str) -> Cond {
        let Some(&datetime) = self.traits.get(t.trait_key.as_str()) else {
            self.problems.push(
                format!("{path}.trait"),
                format!("unknown trait `{}` (define it under `traits`)", t.trait_key),
            );
            return Cond::Always;
        };
        let allowed = if datetime {
            matches!(t.op, Operator::Before | Operator::After | Operator::Exists)
        } else {
            matches!(
                t.op,
                Operator::Eq
                    | Operator::Neq
                    | Operator::In
                    | Operator::NotIn
                    | Operator::Lt
                    | Operator::Lte
                    | Operator::Gt
                    | Operator::Gte
                    | Operator::Exists
            )
        };
        if !allowed {
            let (kind, ops) = if datetime {
                ("datetime", "before, after, exists")
            } else {
                ("number", "eq, neq, in, not_in, lt, lte, gt, gte, exists")
            };
            self.problems.push(
                format!("{path}.op"),
                format!(
                    "operator `{}` does not apply to the {kind} trait `{}` (use one of: {ops})",
                    op_name(t.op),
                    t.trait_key
                ),
            );
            return Cond::Always;
        }
        let as_attribute = AttributeCondition {
            attribute: t.trait_key.clone(),
            op: t.op,
            values: t.values.clone(),
            ignore_case: false,
        };
        let test = match compile_test(&as_attribute, &format!("{path}.values"), self.problems) {
            Some(t) => t,
            None => return Cond::Always,
        };
        let positive = Cond::Trait {
            key: t.trait_key.as_str().into(),
            test,
        };
        match t.op {
            Operator::Neq | Operator::NotIn => Cond::Not(Box::new(positive)),
            _ => positive,
        }
    }

    fn attribute(&mut self, a: &AttributeCondition, path: &str) -> Cond {
        if a.attribute.is_empty() {
            self.problems
                .push(format!("{path}.attribute"), "must not be empty");
        }
        let name = AttrName::new(&a.attribute);
        let vpath = format!("{path}.values");
        let test = match compile_test(a, &vpath, self.problems) {
            Some(t) => t,
            None => return Cond::Always,
        };
        let positive = Cond::Attr { name, test };
        match a.op {
            Operator::Neq | Operator::NotIn => Cond::Not(Box::new(positive)),
            _ => positive,
        }
    }
}

fn strings(
    values: &[Value],
    ignore_case: bool,
    path: &str,
    problems: &mut Problems,
) -> Box<[Box<str>]> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match v {
            Value::String(s) if ignore_case => Some(text::lowercase(s)),
            Value::String(s) => Some(s.as_str().into()),
            other => {
                problems.push(
                    format!("{path}[{i}]"),
                    format!("must be a string, got {other}"),
                );
                None
            }
        })
        .collect()
}

fn single<'v>(values: &'v [Value], path: &str, problems: &mut Problems) -> Option<&'v Value> {
    if values.len() != 1 {
        problems.push(
            path,
            format!(
                "this operator takes exactly one value, got {}",
                values.len()
            ),
        );
        return None;
    }
    values.first()
}

fn compile_test(a: &AttributeCondition, path: &str, problems: &mut Problems) -> Option<Test> {
    let values = &a.values;
    let before = problems.len();
    let needs_values = !matches!(a.op, Operator::Exists);
    if needs_values && values.is_empty() {
        problems.push(
            path,
            format!("operator `{}` needs at least one value", op_name(a.op)),
        );
        return None;
    }
    let test = match a.op {
        Operator::Exists => {
            if !values.is_empty() {
                problems.push(path, "operator `exists` takes no values");
            }
            Test::Exists
        }
        Operator::Eq | Operator::Neq | Operator::In | Operator::NotIn => {
            if matches!(a.op, Operator::Eq | Operator::Neq) && values.len() != 1 {
                problems.push(
                    path,
                    format!(
                        "operator `{}` takes exactly one value (use `in` for a list), got {}",
                        op_name(a.op),
                        values.len()
                    ),
                );
            }
            let mut s = Vec::new();
            let mut n = Vec::new();
            let mut b = Vec::new();
            for (i, v) in values.iter().enumerate() {
                match v {
                    Value::String(x) if a.ignore_case => s.push(text::lowercase(x)),
                    Value::String(x) => s.push(x.as_str().into()),
                    Value::Number(x) => n.push(x.as_f64().unwrap_or(f64::NAN)),
                    Value::Bool(x) => b.push(*x),
                    other => problems.push(
                        format!("{path}[{i}]"),
                        format!("must be a string, number or boolean, got {other}"),
                    ),
                }
            }
            let short = if a.ignore_case {
                Box::default()
            } else {
                ShortKey::all(&s)
            };
            Test::Equals {
                strings: s.into(),
                short,
                numbers: n.into(),
                bools: b.into(),
                ignore_case: a.ignore_case,
            }
        }
        Operator::Contains | Operator::StartsWith | Operator::EndsWith => Test::Str {
            op: match a.op {
                Operator::Contains => StrOp::Contains,
                Operator::StartsWith => StrOp::StartsWith,
                _ => StrOp::EndsWith,
            },
            needles: strings(values, a.ignore_case, path, problems),
            ignore_case: a.ignore_case,
        },
        Operator::Regex => {
            let mut res = Vec::new();
            for (i, v) in values.iter().enumerate() {
                match v {
                    Value::String(p) => {
                        let pattern = if a.ignore_case {
                            format!("(?i){p}")
                        } else {
                            p.clone()
                        };
                        match Regex::new(&pattern) {
                            Ok(r) => res.push(r),
                            Err(e) => problems.push(
                                format!("{path}[{i}]"),
                                format!("invalid regex `{p}`: {}", first_line(&e.to_string())),
                            ),
                        }
                    }
                    other => problems.push(
                        format!("{path}[{i}]"),
                        format!("must be a string, got {other}"),
                    ),
                }
            }
            Test::Regex(res.into())
        }
        Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte => {
            let v = single(values, path, problems)?;
            let Some(value) = v.as_f64() else {
                problems.push(format!("{path}[0]"), format!("must be a number, got {v}"));
                return None;
            };
            Test::Number {
                cmp: cmp_of(a.op),
                value,
            }
        }
        Operator::SemverEq
        | Operator::SemverLt
        | Operator::SemverLte
        | Operator::SemverGt
        | Operator::SemverGte => {
            let v = single(values, path, problems)?;
            let text = v.as_str().unwrap_or_default();
            match semver::Version::parse(text.strip_prefix('v').unwrap_or(text)) {
                Ok(version) => Test::Semver {
                    cmp: cmp_of(a.op),
                    version,
                },
                Err(e) => {
                    problems.push(
                        format!("{path}[0]"),
                        format!("invalid semantic version {v}: {e}"),
                    );
                    return None;
                }
            }
        }
        Operator::Before | Operator::After => {
            let v = single(values, path, problems)?;
            let millis = match v {
                Value::String(s) => match parse_rfc3339_millis(s) {
                    Ok(ms) => ms,
                    Err(e) => {
                        problems.push(
                            format!("{path}[0]"),
                            format!("invalid RFC 3339 datetime `{s}`: {e}"),
                        );
                        return None;
                    }
                },
                Value::Number(n) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
                other => {
                    problems.push(
                        format!("{path}[0]"),
                        format!("must be an RFC 3339 datetime or Unix milliseconds, got {other}"),
                    );
                    return None;
                }
            };
            Test::Datetime {
                cmp: if a.op == Operator::Before {
                    Cmp::Lt
                } else {
                    Cmp::Gt
                },
                millis,
            }
        }
        Operator::ContainsAny | Operator::ContainsAll if a.ignore_case => {
            problems.push(
                path.trim_end_matches(".values").to_string() + ".ignore_case",
                format!(
                    "operator `{}` compares list items exactly; `ignore_case` is not supported",
                    op_name(a.op)
                ),
            );
            return None;
        }
        Operator::ContainsAny => Test::ContainsAny(strings(values, false, path, problems)),
        Operator::ContainsAll => Test::ContainsAll(strings(values, false, path, problems)),
    };
    (problems.len() == before).then_some(test)
}

fn cmp_of(op: Operator) -> Cmp {
    match op {
        Operator::Lt | Operator::SemverLt => Cmp::Lt,
        Operator::Lte | Operator::SemverLte => Cmp::Lte,
        Operator::Gt | Operator::SemverGt => Cmp::Gt,
        Operator::Gte | Operator::SemverGte => Cmp::Gte,
        _ => Cmp::Eq,
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The operator's name as written in documents.
pub(crate) fn op_name(op: Operator) -> String {
    serde_json::to_value(op)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::text;
    use super::StrOp;
    use super::{same, ShortKey};

    #[test]
    fn same_agrees_with_string_equality_at_every_length() {
        let base = "abcdefghijklmnopqrstuvwxyzäöü-0123456789";
        for len in 0..=base.len() {
            let Some(a) = base.get(..len) else { continue };
            assert!(same(a, a), "{a:?}");
            assert!(!same(a, base.get(..len + 1).unwrap_or("x")), "{a:?}");
            // One differing byte at each position (first, middle and last included).
            for i in 0..len {
                let mut b = a.as_bytes().to_vec();
                b[i] ^= 1;
                if let Ok(b) = std::str::from_utf8(&b) {
                    assert_eq!(same(a, b), a == b, "{a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn short_keys_are_equal_exactly_when_the_strings_are() {
        let base = "abcdefghijklmnopqrstuvwxyzäöü-0123456789";
        for len in 0..=base.len() {
            let Some(a) = base.get(..len) else { continue };
            let key = ShortKey::of(a.as_bytes());
            assert_eq!(key.is_some(), len <= 16, "{a:?}");
            let Some(key) = key else { continue };
            if let Some(rest) = a.as_bytes().get(1..) {
                assert_ne!(Some(key), ShortKey::of(rest), "{a:?}");
            }
            for i in 0..len {
                let mut b = a.as_bytes().to_vec();
                b[i] ^= 1;
                assert_ne!(Some(key), ShortKey::of(&b), "{a:?} byte {i}");
            }
            let mut longer = a.as_bytes().to_vec();
            longer.push(0);
            assert_ne!(Some(key), ShortKey::of(&longer), "{a:?} + NUL");
            assert_eq!(Some(key), ShortKey::of(a.to_string().as_bytes()));
        }
    }

    #[test]
    fn semver_text_agrees_with_the_semver_crate() {
        let texts = [
            "1.2.3",
            "v1.2.3",
            "0.0.0",
            "1.2.3-alpha",
            "1.2.3-alpha.1",
            "1.2.3-alpha.beta",
            "1.2.3-beta",
            "1.2.3-beta.2",
            "1.2.3-beta.11",
            "1.2.3-rc.1",
            "1.2.3+build",
            "1.2.3-rc.1+build.5",
            "1.2.3-0",
            "1.2.3-0a",
            "1.2.3-a-b--c",
            "1.2.3+001",
            "1.2.3-x.7.z.92",
            "1.2.3-alpha.very.long.identifier.list",
            "10.20.30",
            "18446744073709551615.0.0",
            "1.2.3-99999999999999999999999",
            "1.2.3-100000000000000000000000",
            "1.2.4",
            "1.3.0",
            "2.0.0",
            // Invalid.
            "",
            "v",
            "1",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-01",
            "1.2.3-a..b",
            "1.2.3+a..b",
            "1.2.3-ä",
            "1.2.3 ",
            " 1.2.3",
            "a.b.c",
            "1.2.-3",
            "18446744073709551616.0.0",
            "1.2.3+a+b",
            "vv1.2.3",
            "1.2.3-+",
        ];
        let operands = [
            "1.2.3",
            "1.2.3-alpha.1",
            "1.2.3-beta.11",
            "1.2.3-rc.1",
            "0.0.0",
            "2.0.0",
        ];
        for operand in operands {
            let Ok(version) = semver::Version::parse(operand) else {
                panic!("operand {operand:?} must be valid");
            };
            for text in texts {
                let expected = semver::Version::parse(text.strip_prefix('v').unwrap_or(text))
                    .ok()
                    .map(|v| v.cmp_precedence(&version));
                assert_eq!(
                    super::semver_text::cmp_precedence(text, &version),
                    expected,
                    "{text:?} vs {operand:?}"
                );
            }
        }
    }

    #[test]
    fn case_insensitive_string_tests() {
        assert!(text::eq_ci("PaRiS", "paris"));
        assert!(text::eq_ci("ÉCOLE", "école"));
        assert!(!text::eq_ci("Pari", "paris"));
        assert!(text::test(StrOp::StartsWith, "Straße-1", "straße", true));
        assert!(text::test(StrOp::EndsWith, "Yoga-MATS", "mats", true));
        assert!(text::test(StrOp::Contains, "Big YOGA mat", "yoga", true));
        assert!(!text::test(StrOp::Contains, "Big mat", "yoga", true));
        assert!(text::test(StrOp::Contains, "ünïcödé", "", true));
        assert!(text::eq_ci("ΟΔΟΣ", &text::lowercase("ΟΔΟΣ")));
        assert!(text::test(
            StrOp::EndsWith,
            "ΟΔΟΣ",
            &text::lowercase("ΔΟΣ"),
            true
        ));
    }
}
