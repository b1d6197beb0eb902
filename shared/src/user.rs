//! The user being evaluated: a key (the default bucketing unit) plus typed attributes.
//!
//! # Layout
//!
//! A [`User`] is **one** heap block, a `Box<str>` of exactly the size it needs:
//!
//! ```text
//! key | directory: per attribute, name length + record offset | records: name, tag, value | …
//! ```
//!
//! Attributes are sorted by name. The directory holds one 4-byte entry per attribute: the
//! name's length and where its record starts (21 bits in three 7-bit bytes, relative to the
//! first record). A record is the name, a one-byte tag (`S` string, `I` small non-negative
//! integer, `N` other number, `T`/`F` boolean, `D` datetime, `L` list) and the value: a string's
//! bytes; an integer below 2^24 as 6-bit groups (one byte below 64); other numbers and datetimes
//! as their 64 bits in ten 7-bit bytes; a list's item count, then each item's length and bytes.
//! A record ends where the next one starts. Every byte the layout adds is ASCII, so the block
//! stays valid UTF-8 and values are handed out as `&str` slices of it: no copying and no
//! `unsafe`.
//!
//! A lookup compares the wanted name's length with the directory's lengths (one byte each at a
//! fixed stride, no pointer to follow) and reads the bytes of only the names of the same length;
//! names are unique, so the first match is the match. Users the directory cannot describe (more
//! than 32 attributes, a name longer than 127 bytes, or more than 2 MiB of records) keep a
//! table of record offsets instead (a second heap block), binary searched above 32 attributes.
//!
//! Why: with a `String` per name and per value, a user of nine attributes took 23 heap blocks
//! and about 1.5 KB, and evaluating a flag for a user that was not in cache waited for main
//! memory at every string it compared. The same user now takes one block of about 170 bytes
//! (plus the 40-byte `User`), and users built one after another sit back to back in memory.
//!
//! Setting an attribute edits the block in place (the new record is appended, rotated into
//! place, and the directory entries after it are shifted) and grows it by exactly the record's
//! size: one `realloc` per new attribute. Replacing an attribute leaves no unused bytes.
//!
//! Lookups ([`User::get`]) hand out borrowed [`AttributeRef`]s and never allocate.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One attribute value (owned). A [`User`] stores it in its compact form; [`User::get`] returns
/// an [`AttributeRef`] view of it, and [`AttributeRef::to_value`] turns a view back into this.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// Text.
    String(String),
    /// A number (integers are exact up to 2^53).
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings (interests, tags, purchased categories).
    List(Vec<String>),
    /// A point in time, as Unix milliseconds (UTC).
    Datetime(i64),
}

impl AttributeValue {
    /// A datetime attribute from an RFC 3339 string such as `2026-01-31T12:00:00Z`.
    pub fn datetime_rfc3339(text: &str) -> Result<Self, time::error::Parse> {
        Ok(AttributeValue::Datetime(parse_rfc3339_millis(text)?))
    }
}

/// Parses an RFC 3339 datetime into Unix milliseconds.
pub(crate) fn parse_rfc3339_millis(text: &str) -> Result<i64, time::error::Parse> {
    let t = OffsetDateTime::parse(text, &Rfc3339)?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

impl From<&str> for AttributeValue {
    fn from(v: &str) -> Self {
        AttributeValue::String(v.to_string())
    }
}
impl From<String> for AttributeValue {
    fn from(v: String) -> Self {
        AttributeValue::String(v)
    }
}
impl From<bool> for AttributeValue {
    fn from(v: bool) -> Self {
        AttributeValue::Bool(v)
    }
}
impl From<f64> for AttributeValue {
    fn from(v: f64) -> Self {
        AttributeValue::Number(v)
    }
}
impl From<i64> for AttributeValue {
    fn from(v: i64) -> Self {
        AttributeValue::Number(v as f64)
    }
}
impl From<i32> for AttributeValue {
    fn from(v: i32) -> Self {
        AttributeValue::Number(f64::from(v))
    }
}
impl From<u32> for AttributeValue {
    fn from(v: u32) -> Self {
        AttributeValue::Number(f64::from(v))
    }
}
impl From<Vec<String>> for AttributeValue {
    fn from(v: Vec<String>) -> Self {
        AttributeValue::List(v)
    }
}
impl From<Vec<&str>> for AttributeValue {
    fn from(v: Vec<&str>) -> Self {
        AttributeValue::List(v.into_iter().map(str::to_string).collect())
    }
}
impl<const N: usize> From<[&str; N]> for AttributeValue {
    fn from(v: [&str; N]) -> Self {
        AttributeValue::List(v.iter().map(|s| s.to_string()).collect())
    }
}
impl From<AttributeRef<'_>> for AttributeValue {
    fn from(v: AttributeRef<'_>) -> Self {
        v.to_value()
    }
}

/// Serializes Unix milliseconds as an RFC 3339 string.
fn serialize_datetime<S: Serializer>(ms: i64, s: S) -> Result<S::Ok, S::Error> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(serde::ser::Error::custom)?;
    let text = t.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AttributeValue::String(v) => s.serialize_str(v),
            AttributeValue::Number(v) => s.serialize_f64(*v),
            AttributeValue::Bool(v) => s.serialize_bool(*v),
            AttributeValue::List(v) => v.serialize(s),
            AttributeValue::Datetime(ms) => serialize_datetime(*ms, s),
        }
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AttributeValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean or list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AttributeValue::String(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(AttributeValue::String(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(AttributeValue::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(AttributeValue::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(AttributeValue::Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(AttributeValue::Number(v))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(AttributeValue::List(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// A borrowed view of one attribute of a [`User`] (from [`User::get`] or
/// [`User::attributes`]). `Copy`, and never allocates.
///
/// ```
/// use tailor_core::{AttributeRef, AttributeValue, User};
/// let user = User::new("u").with("country", "US").with("tags", ["a", "b"]);
/// assert_eq!(user.get("country"), Some(AttributeRef::Str("US")));
/// let tags = user.get("tags").unwrap();
/// assert_eq!(tags, AttributeValue::List(vec!["a".into(), "b".into()]));
/// assert_eq!(tags.to_value(), AttributeValue::List(vec!["a".into(), "b".into()]));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttributeRef<'u> {
    /// Text.
    Str(&'u str),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings.
    List(AttributeList<'u>),
    /// A point in time, as Unix milliseconds (UTC).
    Datetime(i64),
}

impl AttributeRef<'_> {
    /// The owned value (allocates for strings and lists).
    pub fn to_value(self) -> AttributeValue {
        match self {
            AttributeRef::Str(s) => AttributeValue::String(s.to_string()),
            AttributeRef::Number(n) => AttributeValue::Number(n),
            AttributeRef::Bool(b) => AttributeValue::Bool(b),
            AttributeRef::List(l) => AttributeValue::List(l.to_vec()),
            AttributeRef::Datetime(ms) => AttributeValue::Datetime(ms),
        }
    }
}

impl PartialEq<AttributeValue> for AttributeRef<'_> {
    fn eq(&self, other: &AttributeValue) -> bool {
        match (*self, other) {
            (AttributeRef::Str(a), AttributeValue::String(b)) => a == b,
            (AttributeRef::Number(a), AttributeValue::Number(b)) => a == *b,
            (AttributeRef::Bool(a), AttributeValue::Bool(b)) => a == *b,
            (AttributeRef::List(a), AttributeValue::List(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
            }
            (AttributeRef::Datetime(a), AttributeValue::Datetime(b)) => a == *b,
            _ => false,
        }
    }
}

impl PartialEq<AttributeRef<'_>> for AttributeValue {
    fn eq(&self, other: &AttributeRef<'_>) -> bool {
        other == self
    }
}

impl Serialize for AttributeRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            AttributeRef::Str(v) => s.serialize_str(v),
            AttributeRef::Number(v) => s.serialize_f64(v),
            AttributeRef::Bool(v) => s.serialize_bool(v),
            AttributeRef::List(v) => s.collect_seq(v),
            AttributeRef::Datetime(ms) => serialize_datetime(ms, s),
        }
    }
}

/// A borrowed list attribute: its items are `&str` slices of the user.
#[derive(Clone, Copy)]
pub struct AttributeList<'u> {
    /// The encoded list: item count, then each item's length and bytes.
    encoded: &'u str,
}

impl<'u> AttributeList<'u> {
    /// Number of items.
    pub fn len(&self) -> usize {
        let mut pos = 0;
        read_len(self.encoded.as_bytes(), &mut pos)
    }

    /// True when the list has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item at `index`.
    pub fn get(&self, index: usize) -> Option<&'u str> {
        self.iter().nth(index)
    }

    /// The items, in order.
    pub fn iter(&self) -> ListItems<'u> {
        let mut pos = 0;
        let remaining = read_len(self.encoded.as_bytes(), &mut pos);
        ListItems {
            encoded: self.encoded,
            pos,
            remaining,
        }
    }

    /// The items as owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl<'u> IntoIterator for AttributeList<'u> {
    type Item = &'u str;
    type IntoIter = ListItems<'u>;
    fn into_iter(self) -> ListItems<'u> {
        self.iter()
    }
}

impl PartialEq for AttributeList<'_> {
    fn eq(&self, other: &Self) -> bool {
        // The encoding is canonical: equal lists are equal bytes.
        self.encoded == other.encoded
    }
}

impl fmt::Debug for AttributeList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The items of an [`AttributeList`].
#[derive(Debug, Clone)]
pub struct ListItems<'u> {
    encoded: &'u str,
    pos: usize,
    remaining: usize,
}

impl<'u> Iterator for ListItems<'u> {
    type Item = &'u str;

    #[inline]
    fn next(&mut self) -> Option<&'u str> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let len = read_len(self.encoded.as_bytes(), &mut self.pos);
        let start = self.pos;
        self.pos += len;
        self.encoded.get(start..self.pos)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for ListItems<'_> {}

// --- the compact representation ------------------------------------------------------------

/// Record tags (the byte after the name).
const TAG_STR: u8 = b'S';
const TAG_NUMBER: u8 = b'N';
/// A number that is a small non-negative integer, stored as a length-style varint.
const TAG_INTEGER: u8 = b'I';
const TAG_TRUE: u8 = b'T';
const TAG_FALSE: u8 = b'F';
const TAG_DATETIME: u8 = b'D';
const TAG_LIST: u8 = b'L';

/// Bytes of a number or datetime: 64 bits in 7-bit groups.
const WORD_BYTES: usize = 10;

/// Numbers that are integers in `[0, 2^24)` (ages, counts, versions) take one to four bytes.
const SMALL_INTEGER_MAX: f64 = (1 << 24) as f64;

/// The number as a small integer, if it is one (`-0.0` is not: it must come back as itself).
fn small_integer(n: f64) -> Option<usize> {
    ((0.0..SMALL_INTEGER_MAX).contains(&n) && n.fract() == 0.0 && n.is_sign_positive())
        .then_some(n as usize)
}

/// Bytes of a directory entry: the name length, then the record's offset in 7-bit groups.
const ENTRY: usize = 4;

/// The directory describes users of at most this many attributes…
const LINEAR_SCAN_MAX: usize = 32;
/// …whose names are at most this long (one ASCII byte)…
const DIRECTORY_MAX_NAME: usize = 0x7F;
/// …and whose records fit in 21 bits of offset.
const DIRECTORY_MAX_RECORDS: usize = 1 << 21;

/// Appends `n` as 6-bit groups, least significant first, `0x40` marking "more follows".
fn write_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let low = (n & 0x3F) as u8;
        n >>= 6;
        if n == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x40);
    }
}

/// Bytes [`write_len`] takes for `n`.
fn len_size(mut n: usize) -> usize {
    let mut size = 1;
    while n >= 0x40 {
        n >>= 6;
        size += 1;
    }
    size
}

/// Reads a length written by [`write_len`] at `*pos`, advancing `*pos` past it.
#[inline(always)]
fn read_len(bytes: &[u8], pos: &mut usize) -> usize {
    match bytes.get(*pos) {
        Some(&b) if b < 0x40 => {
            *pos += 1;
            usize::from(b)
        }
        _ => read_len_slow(bytes, pos),
    }
}

#[cold]
#[inline(never)]
fn read_len_slow(bytes: &[u8], pos: &mut usize) -> usize {
    let mut n = 0;
    let mut shift = 0;
    while let Some(&b) = bytes.get(*pos) {
        *pos += 1;
        n |= usize::from(b & 0x3F) << shift;
        shift += 6;
        if b & 0x40 == 0 || shift >= usize::BITS as usize {
            break;
        }
    }
    n
}

fn write_word(out: &mut Vec<u8>, bits: u64) {
    for i in 0..WORD_BYTES {
        out.push((bits >> (7 * i)) as u8 & 0x7F);
    }
}

#[inline]
fn read_word(bytes: &[u8], at: usize) -> u64 {
    let Some(b) = bytes.get(at..at + WORD_BYTES) else {
        return 0;
    };
    b.iter()
        .enumerate()
        .fold(0, |bits, (i, &x)| bits | u64::from(x & 0x7F) << (7 * i))
}

/// A directory entry for a name of `name_len` bytes whose record starts `offset` bytes into
/// the records.
fn entry(name_len: usize, offset: usize) -> [u8; ENTRY] {
    [
        name_len as u8,
        (offset & 0x7F) as u8,
        (offset >> 7 & 0x7F) as u8,
        (offset >> 14 & 0x7F) as u8,
    ]
}

/// The record offset of a directory entry.
#[inline(always)]
fn entry_offset(e: &[u8]) -> usize {
    match *e {
        [_, a, b, c] => usize::from(a) | usize::from(b) << 7 | usize::from(c) << 14,
        _ => 0,
    }
}

/// A value on its way into a user.
#[derive(Clone, Copy)]
enum Incoming<'a> {
    Str(&'a str),
    Number(f64),
    Bool(bool),
    Datetime(i64),
    Strings(&'a [String]),
    Items(AttributeList<'a>),
}

impl<'a> Incoming<'a> {
    fn of_value(v: &'a AttributeValue) -> Self {
        match v {
            AttributeValue::String(s) => Incoming::Str(s),
            AttributeValue::Number(n) => Incoming::Number(*n),
            AttributeValue::Bool(b) => Incoming::Bool(*b),
            AttributeValue::List(l) => Incoming::Strings(l),
            AttributeValue::Datetime(ms) => Incoming::Datetime(*ms),
        }
    }

    fn of_ref(v: AttributeRef<'a>) -> Self {
        match v {
            AttributeRef::Str(s) => Incoming::Str(s),
            AttributeRef::Number(n) => Incoming::Number(n),
            AttributeRef::Bool(b) => Incoming::Bool(b),
            AttributeRef::List(l) => Incoming::Items(l),
            AttributeRef::Datetime(ms) => Incoming::Datetime(ms),
        }
    }

    /// Bytes of the encoded value (after the tag).
    fn size(self) -> usize {
        fn list<'s>(items: impl ExactSizeIterator<Item = &'s str>) -> usize {
            len_size(items.len()) + items.map(|s| len_size(s.len()) + s.len()).sum::<usize>()
        }
        match self {
            Incoming::Str(s) => s.len(),
            Incoming::Number(n) => small_integer(n).map_or(WORD_BYTES, len_size),
            Incoming::Datetime(_) => WORD_BYTES,
            Incoming::Bool(_) => 0,
            Incoming::Strings(l) => list(l.iter().map(String::as_str)),
            Incoming::Items(l) => list(l.iter()),
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        fn list<'s>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = &'s str>) {
            write_len(out, items.len());
            for s in items {
                write_len(out, s.len());
                out.extend_from_slice(s.as_bytes());
            }
        }
        match self {
            Incoming::Str(s) => {
                out.push(TAG_STR);
                out.extend_from_slice(s.as_bytes());
            }
            Incoming::Number(n) => match small_integer(n) {
                Some(i) => {
                    out.push(TAG_INTEGER);
                    write_len(out, i);
                }
                None => {
                    out.push(TAG_NUMBER);
                    write_word(out, n.to_bits());
                }
            },
            Incoming::Datetime(ms) => {
                out.push(TAG_DATETIME);
                write_word(out, ms as u64);
            }
            Incoming::Bool(b) => out.push(if b { TAG_TRUE } else { TAG_FALSE }),
            Incoming::Strings(l) => {
                out.push(TAG_LIST);
                list(out, l.iter().map(String::as_str));
            }
            Incoming::Items(l) => {
                out.push(TAG_LIST);
                list(out, l.iter());
            }
        }
    }
}

/// Bytes of the record for attribute `name` = `value`: name, tag, value.
fn record_size(name: &str, value: Incoming<'_>) -> usize {
    name.len() + 1 + value.size()
}

/// Appends the record for attribute `name` = `value`.
fn write_record(out: &mut Vec<u8>, name: &str, value: Incoming<'_>) {
    out.extend_from_slice(name.as_bytes());
    value.write(out);
}

/// The encoded bytes as a `String`. Every byte the encoding adds is ASCII and every string it
/// copies is whole, so the check never fails.
fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A user too large to encode (offsets are `u32`).
#[derive(Debug)]
struct TooLarge;

const TOO_LARGE: &str = "a user's key, attribute names and values must stay under 4 GiB";

/// A user: the key is the default bucketing unit; attributes feed targeting.
///
/// Attributes are kept sorted by name. The name `key` always means the user key in targeting
/// and bucketing (an attribute called `key` can be set, but conditions never read it).
///
/// A user is one heap block holding its key, names and values (see the
/// [module docs](self)); `Clone` copies that block. Lookups never allocate.
///
/// # Panics
///
/// Building a user panics if its encoded size (key, names and values) would exceed 4 GiB;
/// deserializing such a user is an error instead.
///
/// ```
/// use tailor_core::{AttributeRef, User};
/// let user = User::new("user-42")
///     .with("country", "US")
///     .with("age", 31)
///     .with("interests", ["yoga", "running"]);
/// assert_eq!(user.key(), "user-42");
/// assert_eq!(user.get("age"), Some(AttributeRef::Number(31.0)));
/// ```
#[derive(Clone, Default)]
pub struct User {
    /// The key, the directory (small users) and the records, sorted by name.
    text: Box<str>,
    key_len: u32,
    /// Number of attributes.
    len: u32,
    /// Users the directory cannot describe: per attribute, where its record starts and how
    /// long its name is. Empty (no allocation) for users with a directory.
    slots: Box<[Slot]>,
}

/// Where a large user's record starts (offset in the text) and how long its name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    at: u32,
    name_len: u32,
}

/// Where an attribute's record sits in the text.
#[derive(Clone, Copy)]
struct Record {
    /// The name's offset.
    start: usize,
    /// The tag's offset (just past the name; the value follows the tag).
    tag: usize,
    /// The offset just past the record.
    end: usize,
}

impl User {
    /// A user with this key and no attributes.
    pub fn new(key: impl Into<String>) -> Self {
        let text = key.into().into_boxed_str();
        User {
            key_len: checked_u32(text.len()),
            text,
            len: 0,
            slots: Box::default(),
        }
    }

    /// Sets an attribute, builder style.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<AttributeValue>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets (or replaces) an attribute.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<AttributeValue>) {
        let name = name.into();
        let value = value.into();
        self.put(&name, Incoming::of_value(&value));
    }

    /// The user key.
    #[inline]
    pub fn key(&self) -> &str {
        self.text.get(..self.key_len as usize).unwrap_or_default()
    }

    /// An attribute by name (not `key`; use [`User::key`]). Never allocates.
    #[inline]
    pub fn get(&self, name: &str) -> Option<AttributeRef<'_>> {
        self.find(name).map(|r| self.value(r))
    }

    /// All attributes, sorted by name.
    pub fn attributes(&self) -> impl ExactSizeIterator<Item = (&str, AttributeRef<'_>)> {
        (0..self.len as usize).map(|i| {
            let r = self.record(i);
            (
                self.text.get(r.start..r.tag).unwrap_or_default(),
                self.value(r),
            )
        })
    }

    /// Where the records start (after the key and the directory).
    #[inline(always)]
    fn records_at(&self) -> usize {
        let directory = if self.slots.is_empty() {
            ENTRY * self.len as usize
        } else {
            0
        };
        self.key_len as usize + directory
    }

    /// The record of the `i`-th attribute (`i < len`).
    fn record(&self, i: usize) -> Record {
        if let Some(slot) = self.slots.get(i) {
            let start = slot.at as usize;
            let end = self
                .slots
                .get(i + 1)
                .map_or(self.text.len(), |s| s.at as usize);
            return Record {
                start,
                tag: start + slot.name_len as usize,
                end,
            };
        }
        let bytes = self.text.as_bytes();
        let records = self.records_at();
        let entry_at = |i: usize| bytes.get(self.key_len as usize + ENTRY * i..);
        let this = entry_at(i).unwrap_or_default();
        let start = records + entry_offset(this.get(..ENTRY).unwrap_or_default());
        let end = if i + 1 < self.len as usize {
            records
                + entry_offset(
                    entry_at(i + 1)
                        .and_then(|e| e.get(..ENTRY))
                        .unwrap_or_default(),
                )
        } else {
            bytes.len()
        };
        Record {
            start,
            tag: start + usize::from(this.first().copied().unwrap_or_default()),
            end,
        }
    }

    /// The record of attribute `name`.
    ///
    /// Users of up to [`LINEAR_SCAN_MAX`] attributes are scanned comparing **name lengths
    /// first**: the lengths sit at a fixed stride in the directory, so the scan reads the bytes
    /// of only the names of the right length. Names are unique, so the first match is the match.
    #[inline]
    fn find(&self, name: &str) -> Option<Record> {
        if !self.slots.is_empty() {
            return self.find_slot(name);
        }
        let bytes = self.text.as_bytes();
        let key_len = self.key_len as usize;
        let records = key_len + ENTRY * self.len as usize;
        let want = name.as_bytes();
        if want.len() > DIRECTORY_MAX_NAME {
            return None;
        }
        let mut entries = bytes.get(key_len..records)?.chunks_exact(ENTRY);
        while let Some(e) = entries.next() {
            if e.first().copied() == Some(want.len() as u8) {
                let start = records + entry_offset(e);
                let tag = start + want.len();
                if bytes.get(start..tag).is_some_and(|n| same_bytes(n, want)) {
                    let end = entries
                        .next()
                        .map_or(bytes.len(), |next| records + entry_offset(next));
                    return Some(Record { start, tag, end });
                }
            }
        }
        None
    }

    /// [`User::find`] for users without a directory: a length-first scan up to
    /// [`LINEAR_SCAN_MAX`] attributes, a binary search above.
    #[cold]
    #[inline(never)]
    fn find_slot(&self, name: &str) -> Option<Record> {
        let i = if self.slots.len() <= LINEAR_SCAN_MAX {
            self.slots.iter().position(|s| {
                s.name_len as usize == name.len()
                    && self
                        .text
                        .as_bytes()
                        .get(s.at as usize..s.at as usize + name.len())
                        == Some(name.as_bytes())
            })?
        } else {
            self.search(name).ok()?
        };
        Some(self.record(i))
    }

    /// Binary search by name: the attribute's index (`Ok`) or where it would go (`Err`).
    fn search(&self, name: &str) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.len as usize);
        while low < high {
            let mid = low + (high - low) / 2;
            let r = self.record(mid);
            let found = self.text.as_bytes().get(r.start..r.tag).unwrap_or_default();
            match found.cmp(name.as_bytes()) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    /// The value of a record.
    #[inline(always)]
    fn value(&self, r: Record) -> AttributeRef<'_> {
        let bytes = self.text.as_bytes();
        let text = || self.text.get(r.tag + 1..r.end).unwrap_or_default();
        match bytes.get(r.tag).copied().unwrap_or_default() {
            TAG_STR => AttributeRef::Str(text()),
            TAG_INTEGER => {
                let mut at = r.tag + 1;
                AttributeRef::Number(read_len(bytes, &mut at) as f64)
            }
            TAG_NUMBER => AttributeRef::Number(f64::from_bits(read_word(bytes, r.tag + 1))),
            TAG_TRUE => AttributeRef::Bool(true),
            TAG_FALSE => AttributeRef::Bool(false),
            TAG_DATETIME => AttributeRef::Datetime(read_word(bytes, r.tag + 1) as i64),
            _ => AttributeRef::List(AttributeList { encoded: text() }),
        }
    }

    /// Sets attribute `name`: edits the block in place while the directory can describe the
    /// result, and re-encodes the user otherwise.
    fn put(&mut self, name: &str, value: Incoming<'_>) {
        let found = self.search(name);
        let n = self.len as usize;
        let size = record_size(name, value);
        let replaced = found.map_or(0, |i| {
            let r = self.record(i);
            r.end - r.start
        });
        let records_after = self.text.len() - self.records_at() - replaced + size;
        let fits = n + usize::from(found.is_err()) <= LINEAR_SCAN_MAX
            && name.len() <= DIRECTORY_MAX_NAME
            && records_after < DIRECTORY_MAX_RECORDS;
        if !self.slots.is_empty() || !fits {
            return self.reencode(name, value);
        }

        let records = self.records_at();
        let (i, start, later) = match found {
            Ok(i) => (i, self.record(i).start, i + 1),
            Err(i) if i < n => (i, self.record(i).start, i),
            Err(i) => (i, self.text.len(), i),
        };
        let mut bytes = std::mem::take(&mut self.text).into_string().into_bytes();
        // The new record goes to the end, then rotates into place. The block grows by exactly
        // what it needs: users are stored back to back, without slack between them.
        bytes.drain(start..start + replaced);
        bytes.reserve_exact(size + if found.is_err() { ENTRY } else { 0 });
        write_record(&mut bytes, name, value);
        if let Some(moved) = bytes.get_mut(start..) {
            moved.rotate_right(size);
        }
        // Records after it moved by the change in size.
        let key_len = self.key_len as usize;
        for j in later..n {
            let at = key_len + ENTRY * j;
            if let Some(e) = bytes.get_mut(at..at + ENTRY) {
                let moved = (entry_offset(e) + size) - replaced;
                e.copy_from_slice(&entry(usize::from(e[0]), moved));
            }
        }
        if found.is_err() {
            let at = key_len + ENTRY * i;
            bytes.extend_from_slice(&entry(name.len(), start - records));
            if let Some(moved) = bytes.get_mut(at..) {
                moved.rotate_right(ENTRY);
            }
            self.len += 1;
        }
        self.text = into_text(bytes).into_boxed_str();
    }

    /// Sets attribute `name` by encoding the whole user again.
    fn reencode(&mut self, name: &str, value: Incoming<'_>) {
        let mut attributes: Vec<(&str, Incoming<'_>)> = self
            .attributes()
            .map(|(n, v)| (n, Incoming::of_ref(v)))
            .collect();
        match attributes.binary_search_by(|(n, _)| (*n).cmp(name)) {
            Ok(i) => {
                if let Some(a) = attributes.get_mut(i) {
                    a.1 = value;
                }
            }
            Err(i) => attributes.insert(i, (name, value)),
        }
        match User::encode(self.key(), &attributes) {
            Ok(user) => *self = user,
            Err(TooLarge) => panic!("{TOO_LARGE}"),
        }
    }

    /// A user with this key and these attributes (sorted by name, names unique).
    fn encode(key: &str, attributes: &[(&str, Incoming<'_>)]) -> Result<User, TooLarge> {
        let n = attributes.len();
        let records: usize = attributes.iter().map(|(n, v)| record_size(n, *v)).sum();
        let directory = n <= LINEAR_SCAN_MAX
            && records < DIRECTORY_MAX_RECORDS
            && attributes
                .iter()
                .all(|(n, _)| n.len() <= DIRECTORY_MAX_NAME);
        let size = key.len() + if directory { ENTRY * n } else { 0 } + records;
        let too_large = |n: usize| u32::try_from(n).map_err(|_| TooLarge);
        too_large(size)?;
        let mut bytes = Vec::with_capacity(size);
        bytes.extend_from_slice(key.as_bytes());
        let mut slots = Vec::new();
        if directory {
            let mut offset = 0;
            for (name, value) in attributes {
                bytes.extend_from_slice(&entry(name.len(), offset));
                offset += record_size(name, *value);
            }
        } else {
            slots.reserve_exact(n);
        }
        for (name, value) in attributes {
            if !directory {
                slots.push(Slot {
                    at: too_large(bytes.len())?,
                    name_len: too_large(name.len())?,
                });
            }
            write_record(&mut bytes, name, *value);
        }
        Ok(User {
            text: into_text(bytes).into_boxed_str(),
            key_len: too_large(key.len())?,
            len: too_large(n)?,
            slots: slots.into_boxed_slice(),
        })
    }
}

/// A size or offset as stored (`u32`).
fn checked_u32(n: usize) -> u32 {
    match u32::try_from(n) {
        Ok(n) => n,
        Err(_) => panic!("{TOO_LARGE}"),
    }
}

/// String equality without a call to `memcmp` for the short strings targeting compares
/// (attribute names, countries, plans): lengths first, then at most two overlapping
/// fixed-size loads from each side. Longer strings use the library comparison.
#[inline(always)]
pub(crate) fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// [`same`] for bytes.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    // Reads `N` bytes at `at` as an integer; `at + N <= n` holds at each call below.
    fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
        let mut w = [0u8; N];
        w.copy_from_slice(&s[at..at + N]);
        w
    }
    match n {
        0 => true,
        1 => a[0] == b[0],
        2..=3 => word::<2>(a, 0) == word::<2>(b, 0) && a[n - 1] == b[n - 1],
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        8..=16 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        _ => a == b,
    }
}

/// Semantic equality: the same key and the same attributes.
impl PartialEq for User {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
            && self.len == other.len
            && self.attributes().eq(other.attributes())
    }
}

/// The attributes as a map (for `Debug` and serialization).
struct AttributeMap<'u>(&'u User);

impl fmt::Debug for AttributeMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.attributes()).finish()
    }
}

impl Serialize for AttributeMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len as usize))?;
        for (name, value) in self.0.attributes() {
            map.serialize_entry(name, &value)?;
        }
        map.end()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("key", &self.key())
            .field("attributes", &AttributeMap(self))
            .finish()
    }
}

impl Serialize for User {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut user = s.serialize_struct("User", 2)?;
        user.serialize_field("key", self.key())?;
        user.serialize_field("attributes", &AttributeMap(self))?;
        user.end()
    }
}

#[derive(Deserialize)]
struct UserWire {
    key: String,
    #[serde(default)]
    attributes: BTreeMap<String, AttributeValue>,
}

impl<'de> Deserialize<'de> for User {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let UserWire { key, attributes } = UserWire::deserialize(d)?;
        // A BTreeMap iterates in name order, the order of the records.
        let attributes: Vec<(&str, Incoming<'_>)> = attributes
            .iter()
            .map(|(n, v)| (n.as_str(), Incoming::of_value(v)))
            .collect();
        User::encode(&key, &attributes).map_err(|TooLarge| de::Error::custom(TOO_LARGE))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is the test failure
mod tests {
    use super::*;

    #[test]
    fn set_keeps_attributes_sorted_and_replaces() {
        let mut u = User::new("u").with("b", 1).with("a", "x").with("c", true);
        u.set("b", 2);
        let names: Vec<_> = u.attributes().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(u.get("b"), Some(AttributeRef::Number(2.0)));
        assert_eq!(u.get("a"), Some(AttributeRef::Str("x")));
        assert_eq!(u.get("c"), Some(AttributeRef::Bool(true)));
        assert_eq!(u.get("zzz"), None);
        assert_eq!(u.key(), "u");
    }

    #[test]
    fn every_kind_round_trips_through_the_table() {
        let values = [
            AttributeValue::String("héllo".into()),
            AttributeValue::String(String::new()),
            AttributeValue::Number(-0.5),
            AttributeValue::Number(f64::MAX),
            AttributeValue::Bool(false),
            AttributeValue::Bool(true),
            AttributeValue::List(vec![]),
            AttributeValue::List(vec!["a".into(), "".into(), "ünï".into()]),
            AttributeValue::Datetime(-1),
            AttributeValue::Datetime(1_769_860_800_000),
        ];
        let mut u = User::new("ключ");
        for (i, v) in values.iter().enumerate() {
            u.set(format!("n{i}"), v.clone());
        }
        for (i, v) in values.iter().enumerate() {
            let got = u.get(&format!("n{i}")).unwrap();
            assert_eq!(got, *v);
            assert_eq!(*v, got);
            assert_eq!(got.to_value(), *v);
        }
        assert_eq!(u.key(), "ключ");
        let Some(AttributeRef::List(list)) = u.get("n7") else {
            panic!("n7 is a list")
        };
        assert_eq!(list.len(), 3);
        assert_eq!(list.get(2), Some("ünï"));
        assert_eq!(list.get(3), None);
        assert_eq!(list.iter().len(), 3);
        assert_eq!(list.to_vec(), ["a", "", "ünï"]);
    }

    #[test]
    fn lists_survive_inserting_attributes_before_them() {
        let mut u = User::new("u").with("z", ["1", "2"]).with("y", ["3"]);
        u.set("a", "first");
        u.set("m", ["4", "5", "6"]);
        let expect = [
            ("a", AttributeValue::String("first".into())),
            (
                "m",
                AttributeValue::List(vec!["4".into(), "5".into(), "6".into()]),
            ),
            ("y", AttributeValue::List(vec!["3".into()])),
            ("z", AttributeValue::List(vec!["1".into(), "2".into()])),
        ];
        let got: Vec<_> = u.attributes().map(|(n, v)| (n, v.to_value())).collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn replacing_attributes_leaves_no_garbage() {
        let mut u = User::new("u").with("keep", ["x", "y"]).with("n", 0);
        for i in 0..1_000 {
            u.set("s", format!("value number {i}"));
            u.set("l", vec![format!("item {i}"), "other".to_string()]);
            u.set("n", i);
        }
        let rebuilt = User::new("u")
            .with("keep", ["x", "y"])
            .with("l", ["item 999", "other"])
            .with("n", 999)
            .with("s", "value number 999");
        assert_eq!(u.text, rebuilt.text);
        assert_eq!(u.get("s"), Some(AttributeRef::Str("value number 999")));
        assert_eq!(
            u.get("l").unwrap(),
            AttributeValue::List(vec!["item 999".into(), "other".into()])
        );
        assert_eq!(u.get("n"), Some(AttributeRef::Number(999.0)));
        assert_eq!(u.key(), "u");
        // A replacement may change the kind.
        u.set("n", "now text");
        assert_eq!(u.get("n"), Some(AttributeRef::Str("now text")));
    }

    #[test]
    fn long_names_values_and_lists_use_multi_byte_lengths() {
        let long_name = "n".repeat(70);
        let long_value = "é".repeat(5_000);
        let items: Vec<String> = (0..100).map(|i| "x".repeat(i)).collect();
        let u = User::new("k".repeat(300))
            .with(long_name.as_str(), long_value.as_str())
            .with("items", items.clone())
            .with("a", 1);
        assert_eq!(u.key(), "k".repeat(300));
        assert_eq!(u.get(&long_name), Some(AttributeRef::Str(&long_value)));
        let Some(AttributeRef::List(list)) = u.get("items") else {
            panic!("items is a list")
        };
        assert_eq!(list.len(), 100);
        assert_eq!(list.to_vec(), items);
        assert_eq!(list.get(99), Some("x".repeat(99).as_str()));
        assert_eq!(u.get("a"), Some(AttributeRef::Number(1.0)));
        let names: Vec<_> = u.attributes().map(|(n, _)| n.len()).collect();
        assert_eq!(names, [1, 5, 70]);
        assert!(u.slots.is_empty(), "a 70-byte name fits the directory");
    }

    #[test]
    fn users_the_directory_cannot_describe_use_slots() {
        let long_name = "n".repeat(DIRECTORY_MAX_NAME + 1);
        let huge = "v".repeat(DIRECTORY_MAX_RECORDS);
        for (name, value) in [(long_name.as_str(), "x"), ("big", huge.as_str())] {
            let mut u = User::new("k").with("a", 1).with("z", ["p", "q"]);
            assert!(u.slots.is_empty());
            u.set(name, value);
            assert_eq!(u.slots.len(), 3, "{}", name.len());
            assert_eq!(u.get(name), Some(AttributeRef::Str(value)));
            assert_eq!(u.get("a"), Some(AttributeRef::Number(1.0)));
            assert_eq!(
                u.get("z").unwrap(),
                AttributeValue::List(vec!["p".into(), "q".into()])
            );
            assert_eq!(u.get("missing"), None);
            u.set("b", true);
            assert_eq!(u.get("b"), Some(AttributeRef::Bool(true)));
            assert_eq!(u.attributes().len(), 4);
            assert_eq!(u.key(), "k");
            let back: User = serde_json::from_str(&serde_json::to_string(&u).unwrap()).unwrap();
            assert_eq!(back, u);
        }
    }

    #[test]
    fn edits_in_place_encode_like_a_fresh_user() {
        // A small deterministic generator: names, kinds and sizes vary; names repeat, so some
        // sets replace (growing or shrinking the record) and some insert.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..200 {
            let mut u = User::new(format!("user-{}", next(1000)));
            let mut model = BTreeMap::new();
            for _ in 0..next(40) {
                let name = format!(
                    "{}{}",
                    ["a", "bb", "country", "plan", "é"][next(5) as usize],
                    next(12)
                );
                let value = match next(5) {
                    0 => AttributeValue::String("x".repeat(next(90) as usize)),
                    1 => AttributeValue::Number(next(1000) as f64 - 500.5),
                    2 => AttributeValue::Bool(next(2) == 0),
                    3 => AttributeValue::Datetime(next(1 << 40) as i64),
                    _ => {
                        AttributeValue::List((0..next(4)).map(|i| "ü".repeat(i as usize)).collect())
                    }
                };
                u.set(name.as_str(), value.clone());
                model.insert(name, value);
                let attributes: Vec<(&str, Incoming<'_>)> = model
                    .iter()
                    .map(|(n, v)| (n.as_str(), Incoming::of_value(v)))
                    .collect();
                let fresh = User::encode(u.key(), &attributes).unwrap();
                assert_eq!(u.text, fresh.text);
                assert_eq!(u.slots, fresh.slots);
                assert_eq!(u.len, fresh.len);
            }
            for (name, value) in &model {
                assert_eq!(u.get(name).unwrap(), *value, "{name}");
            }
        }
    }

    #[test]
    fn numbers_and_datetimes_keep_all_64_bits() {
        for n in [
            0.0,
            -0.0,
            1.0,
            63.0,
            64.0,
            31.5,
            16_777_215.0,
            16_777_216.0,
            -1.0,
            -1.5,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::INFINITY,
            1e-300,
        ] {
            let u = User::new("u").with("n", n);
            let Some(AttributeRef::Number(got)) = u.get("n") else {
                panic!("n is a number")
            };
            assert_eq!(got.to_bits(), n.to_bits());
        }
        for ms in [0, -1, i64::MIN, i64::MAX, 1_769_860_800_000] {
            let u = User::new("u").with("d", AttributeValue::Datetime(ms));
            assert_eq!(u.get("d"), Some(AttributeRef::Datetime(ms)));
        }
        let nan = User::new("u").with("n", f64::NAN);
        assert!(matches!(nan.get("n"), Some(AttributeRef::Number(x)) if x.is_nan()));
    }

    #[test]
    fn get_agrees_with_a_plain_search_on_both_sides_of_the_scan_limit() {
        for count in [
            0,
            1,
            9,
            LINEAR_SCAN_MAX - 2,
            LINEAR_SCAN_MAX - 1,
            LINEAR_SCAN_MAX + 1,
            100,
        ] {
            let mut user = User::new("u");
            let mut expected = BTreeMap::new();
            for i in 0..count {
                user.set(format!("attr-{i}"), i as i64);
                expected.insert(format!("attr-{i}"), AttributeValue::Number(i as f64));
            }
            user.set("city", "Paris");
            user.set("plan", "pro");
            expected.insert("city".into(), "Paris".into());
            expected.insert("plan".into(), "pro".into());
            assert_eq!(user.attributes().len(), expected.len());
            assert_eq!(!user.slots.is_empty(), expected.len() > LINEAR_SCAN_MAX);
            let all: BTreeMap<String, AttributeValue> = user
                .attributes()
                .map(|(n, v)| (n.to_string(), v.to_value()))
                .collect();
            assert_eq!(all, expected);
            for name in [
                "city", "plan", "attr-0", "attr-8", "attr-99", "missing", "cit", "", "key", "u",
            ] {
                assert_eq!(
                    user.get(name).map(AttributeRef::to_value).as_ref(),
                    expected.get(name),
                    "{count} {name:?}"
                );
            }
        }
    }

    #[test]
    fn equality_is_semantic() {
        let a = User::new("u").with("x", "1").with("y", 2);
        let b = User::new("u").with("y", 2).with("x", "old").with("x", "1");
        assert_eq!(a, b);
        assert_ne!(a, User::new("v").with("x", "1").with("y", 2));
        assert_ne!(a, User::new("u").with("x", "1"));
        assert_ne!(a, User::new("u").with("x", "1").with("y", "2"));
        assert_eq!(a.clone(), a);
        assert_eq!(User::default(), User::new(""));
    }

    #[test]
    fn debug_is_readable() {
        let u = User::new("u1").with("tags", ["a", "b"]).with("age", 30);
        assert_eq!(
            format!("{u:?}"),
            r#"User { key: "u1", attributes: {"age": Number(30.0), "tags": List(["a", "b"])} }"#
        );
    }

    #[test]
    fn json_round_trip() {
        let u = User::new("u1")
            .with("country", "US")
            .with("tags", ["a", "b"])
            .with("vip", true)
            .with("age", 30)
            .with("signed_up", AttributeValue::Datetime(1_769_860_800_000));
        let text = serde_json::to_string(&u).unwrap();
        assert_eq!(
            text,
            r#"{"key":"u1","attributes":{"age":30.0,"country":"US","signed_up":"2026-01-31T12:00:00Z","tags":["a","b"],"vip":true}}"#
        );
        let back: User = serde_json::from_str(&text).unwrap();
        // The datetime comes back as its RFC 3339 string, as before.
        let mut expected = u.clone();
        expected.set("signed_up", "2026-01-31T12:00:00Z");
        assert_eq!(back, expected);
        let bare: User = serde_json::from_str(r#"{"key":"k"}"#).unwrap();
        assert_eq!(bare, User::new("k"));
    }

    #[test]
    fn datetime_serializes_as_rfc3339() {
        let v = AttributeValue::datetime_rfc3339("2026-01-31T12:00:00Z").unwrap();
        assert_eq!(v, AttributeValue::Datetime(1_769_860_800_000));
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            "\"2026-01-31T12:00:00Z\""
        );
    }

    #[test]
    fn list_of_non_strings_is_rejected() {
        let err = serde_json::from_str::<AttributeValue>("[1, 2]").unwrap_err();
        assert!(err.to_string().contains("expected a string"), "{err}");
    }
}
