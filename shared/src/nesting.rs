//! The nesting limit of config documents: a linear pre-scan that rejects deep nesting before a
//! parser does super-linear work on it.
//!
//! libyaml (behind `serde_yaml_ng`) spends time quadratic in the depth of flow collections: a
//! 200 KB body of `[[[[…` took minutes of CPU before it was rejected. So every YAML and JSON
//! config text is scanned once, in time linear in its length and with no allocation, and
//! refused when it nests more than [`MAX_NESTING`] levels. Real configs nest a handful of
//! levels (a condition inside `all`/`any`/`not` inside a segment inside the document); 64
//! leaves room for deep condition trees.
//!
//! # What counts as a level
//! - JSON: every `[` or `{` outside a string opens one, `]`/`}` closes it.
//! - YAML: a flow collection (`[`, `{`) opened where a node can start (start of a line after
//!   its indentation, after `: `, `- `, `? `, `,`, or inside another flow collection), plus one
//!   level per block sequence entry (`- `) on the same line (`- - - x` is three levels) and per
//!   indentation step. Brackets inside quoted scalars, plain scalars (`key: a[1]`), comments
//!   and block scalars (`|`, `>`) are text, not levels.
//!
//! The scan over-approximates rather than under-approximates: a document it accepts parses in
//! time linear in its size times [`MAX_NESTING`].

/// Most levels of nesting a config document may have.
pub const MAX_NESTING: usize = 64;

/// A document nests deeper than [`MAX_NESTING`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the document nests more than {limit} levels deep (at line {line}); flatten it")]
pub struct NestingError {
    /// The limit that was exceeded.
    pub limit: usize,
    /// The 1-based line on which the limit was exceeded.
    pub line: usize,
}

/// Checks the nesting depth of a JSON text (invalid JSON is left to the parser).
pub fn check_json(text: &[u8]) -> Result<(), NestingError> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(NestingError {
                        limit: MAX_NESTING,
                        line,
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Checks the nesting depth of a YAML text (see the module docs for what counts).
pub fn check_yaml(text: &str) -> Result<(), NestingError> {
    let mut scan = YamlScan::default();
    for (number, line) in text.lines().enumerate() {
        scan.line(line).map_err(|()| NestingError {
            limit: MAX_NESTING,
            line: number + 1,
        })?;
    }
    Ok(())
}

/// State carried from one YAML line to the next.
#[derive(Default)]
struct YamlScan {
    /// Open flow collections (they may span lines).
    flow: usize,
    /// Inside a double- or single-quoted scalar spanning lines.
    quote: Option<u8>,
    /// Indentation of the block collections enclosing the current line.
    indents: Vec<usize>,
    /// Inside a block scalar: lines indented more than this are its text.
    block_scalar: Option<usize>,
}

impl YamlScan {
    fn line(&mut self, line: &str) -> Result<(), ()> {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        let blank = bytes[indent..].iter().all(|b| b.is_ascii_whitespace());
        if let Some(parent) = self.block_scalar {
            if blank || indent > parent {
                return Ok(());
            }
            self.block_scalar = None;
        }
        if blank {
            return Ok(());
        }
        if self.flow == 0 && self.quote.is_none() {
            while self.indents.last().is_some_and(|i| *i >= indent) {
                self.indents.pop();
            }
            self.indents.push(indent);
        }
        let mut block_entries = 0usize;
        let mut node_start = true;
        let mut i = indent;
        while i < bytes.len() {
            let b = bytes[i];
            if let Some(q) = self.quote {
                match (q, b) {
                    (b'"', b'\\') => i += 1,
                    (b'\'', b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 1,
                    _ if b == q => {
                        self.quote = None;
                        node_start = false;
                    }
                    _ => {}
                }
                i += 1;
                continue;
            }
            let next_is_space = bytes.get(i + 1).is_none_or(|n| *n == b' ' || *n == b'\t');
            match b {
                b' ' | b'\t' => {}
                b'#' if i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t' => break,
                b'"' | b'\'' if node_start => self.quote = Some(b),
                b'[' | b'{' if node_start || self.flow > 0 => {
                    self.flow += 1;
                    node_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    node_start = false;
                }
                b',' if self.flow > 0 => node_start = true,
                b'-' | b'?' if node_start && next_is_space && self.flow == 0 => {
                    block_entries += 1;
                }
                b':' if next_is_space || self.flow > 0 => node_start = true,
                b'|' | b'>' if node_start && self.flow == 0 => {
                    self.block_scalar = Some(indent);
                    break;
                }
                _ => node_start = false,
            }
            if self.indents.len() + block_entries + self.flow > MAX_NESTING {
                return Err(());
            }
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn nested_json(levels: usize) -> String {
        format!("{}{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn json_at_the_limit_passes_and_one_more_fails() {
        assert_eq!(check_json(nested_json(MAX_NESTING).as_bytes()), Ok(()));
        let err = check_json(nested_json(MAX_NESTING + 1).as_bytes()).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.to_string().contains("more than 64 levels"), "{err}");
    }

    #[test]
    fn json_brackets_inside_strings_are_text() {
        let text = format!(
            r#"{{"a": "{}", "b": "\"{}"}}"#,
            "[".repeat(500),
            "{".repeat(500)
        );
        assert_eq!(check_json(text.as_bytes()), Ok(()));
    }

    #[test]
    fn json_depth_is_the_maximum_open_at_once_not_the_total() {
        let text = format!("[{}]", "[[]],".repeat(10_000) + "1");
        assert_eq!(check_json(text.as_bytes()), Ok(()));
    }

    #[test]
    fn yaml_flow_nesting_at_the_limit_passes_and_deeper_fails_with_its_line() {
        let ok = format!(
            "x: {}{}",
            "[".repeat(MAX_NESTING - 1),
            "]".repeat(MAX_NESTING - 1)
        );
        assert_eq!(check_yaml(&ok), Ok(()));
        let deep = format!("a: 1\nx: {}", "[".repeat(40_000));
        assert_eq!(
            check_yaml(&deep),
            Err(NestingError {
                limit: MAX_NESTING,
                line: 2
            })
        );
        let multi_line = "x:\n".to_string() + &"  [\n".repeat(100);
        assert!(check_yaml(&multi_line).is_err());
    }

    #[test]
    fn yaml_compact_block_sequences_count_each_entry() {
        assert!(check_yaml(&format!("x:\n  {}1", "- ".repeat(100))).is_err());
        let ok = format!("x:\n  {}1", "- ".repeat(10));
        assert_eq!(check_yaml(&ok), Ok(()));
    }

    #[test]
    fn yaml_indentation_steps_count() {
        let mut deep = String::new();
        for level in 0..100 {
            deep.push_str(&" ".repeat(level));
            deep.push_str("k:\n");
        }
        assert!(check_yaml(&deep).is_err());
        let mut siblings = String::new();
        for _ in 0..1_000 {
            siblings.push_str("k:\n  v: 1\n");
        }
        assert_eq!(check_yaml(&siblings), Ok(()));
    }

    #[test]
    fn yaml_brackets_in_quotes_plain_scalars_comments_and_block_scalars_are_text() {
        let many = "[".repeat(200);
        let text = format!(
            "a: \"{many}\"\nb: '{many}'' still quoted'\nc: x{many}\nd: 1 # {many}\ne: |\n  {many}\n  {many}\nf: >\n   {many}\ng: \"multi\n  {many}\n  line\"\nh: [1, 2]\n"
        );
        assert_eq!(check_yaml(&text), Ok(()));
    }

    #[test]
    fn a_real_config_passes() {
        let config = "
segments:
  - key: beginners
    conditions:
      all:
        - {attribute: lifecycle, op: eq, values: [new]}
        - any:
            - not: {attribute: country, op: in, values: [\"DE\", 'FR']}
            - {attribute: plan, op: regex, values: ['^[a-z]+$']}
flags:
  - key: homepage
    type: json
    variants:
      - {key: generic, value: {hero: {title: \"Welcome\", items: [[1, 2], [3]]}}}
    default_variant: generic
";
        assert_eq!(check_yaml(config), Ok(()));
    }
}
