//! Single-file scripts with inline metadata (PEP 723): the `# /// script` block's `dependencies`
//! become the spec's packages and its `requires-python` decides or checks `python_version`.
//!
//! ```python
//! # /// script
//! # requires-python = ">=3.11"
//! # dependencies = ["pandas>=2", "rich"]
//! # ///
//! ```
//!
//! The block is found as the PEP's reference implementation finds it: a line `# /// script`, then
//! comment lines (`#` alone or `# ` and text), closed by the last `# ///` among them. Its content
//! is TOML. Anything else a reader might guess at (two blocks, an unclosed one, unknown keys, a
//! dependency that is not a string) is an error naming the file, line and column.

use crate::error::{Error, Result};
use pep440_rs::{Version, VersionSpecifiers};
use std::path::Path;
use std::str::FromStr;

/// Larger files are refused before reading: a script is text, not data.
const MAX_SCRIPT_BYTES: u64 = 16 << 20;
/// The Python versions a `requires-python` is matched against (minor versions imagespec builds).
const MINORS: std::ops::RangeInclusive<u64> = 9..=14;

/// What a script's metadata asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct ScriptMeta {
    /// PEP 508 requirements, as written.
    pub dependencies: Vec<String>,
    /// The `requires-python` specifier, as written.
    pub requires_python: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Block {
    #[serde(default)]
    dependencies: Vec<Requirement>,
    requires_python: Option<Specifier>,
    /// Tools' own tables (`[tool.uv]`, …): allowed by the PEP, not read here.
    #[allow(dead_code)]
    tool: Option<toml::Table>,
}

// One-variant untagged enums: their `expecting` is the whole message of a value of another type.
#[derive(serde::Deserialize)]
#[serde(
    untagged,
    expecting = "each of `dependencies` is a requirement string (PEP 508), such as \"pandas>=2\""
)]
enum Requirement {
    Text(String),
}

#[derive(serde::Deserialize)]
#[serde(
    untagged,
    expecting = "`requires-python` is a version specifier string, such as \">=3.11\""
)]
enum Specifier {
    Text(String),
}

/// Reads the `script` metadata block of the file at `path`.
pub fn read(path: &Path) -> Result<ScriptMeta> {
    let text = super::files::read_text("script", path, MAX_SCRIPT_BYTES, "a PEP 723 script")?;
    parse(&text, &path.display().to_string())
}

/// The `script` block of `text` (the file `name`), parsed.
pub fn parse(text: &str, name: &str) -> Result<ScriptMeta> {
    let at = |line: usize, column: usize, message: String| Error::File {
        path: name.to_owned(),
        line,
        column,
        message,
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut found: Option<(usize, String)> = None;
    let mut i = 0;
    while i < lines.len() {
        let Some(kind) = lines[i].strip_prefix("# /// ") else {
            i += 1;
            continue;
        };
        if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            i += 1;
            continue;
        }
        // The block runs over the comment lines that follow; the last `# ///` among them closes it.
        let start = i;
        let mut end = None;
        let mut j = i + 1;
        while j < lines.len() && (lines[j] == "#" || lines[j].starts_with("# ")) {
            if lines[j] == "# ///" {
                end = Some(j);
            }
            j += 1;
        }
        let Some(end) = end else {
            return Err(at(
                start + 1,
                1,
                format!("the `# /// {kind}` block is not closed by a `# ///` line"),
            ));
        };
        if kind == "script" {
            if let Some((first, _)) = &found {
                return Err(at(
                    start + 1,
                    1,
                    format!(
                        "a second `# /// script` block (the first is at line {}); keep one",
                        first + 1
                    ),
                ));
            }
            let content: String = lines[start + 1..end]
                .iter()
                .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or("")))
                .collect();
            found = Some((start, content));
        }
        i = end + 1;
    }
    let Some((start, content)) = found else {
        return Err(at(
            1,
            1,
            "no `# /// script` metadata block (PEP 723); add one with `dependencies = [...]`".to_owned(),
        ));
    };
    let block: Block = toml::from_str(&content).map_err(|e| {
        // The TOML error's place, in the script: the block's content starts on the line after the
        // opening one, two columns in ("# ").
        let (line, column) = e
            .span()
            .map(|s| super::files::line_column(&content, s.start))
            .unwrap_or((0, 0));
        at(
            start + 2 + line,
            column + 3,
            format!("the `# /// script` block: {}", e.message()),
        )
    })?;
    let requires_python = block.requires_python.map(|Specifier::Text(s)| s);
    if let Some(spec) = &requires_python {
        VersionSpecifiers::from_str(spec).map_err(|e| {
            at(
                start + 1,
                1,
                format!("requires-python {spec:?} is not a version specifier: {e}"),
            )
        })?;
    }
    Ok(ScriptMeta {
        dependencies: block
            .dependencies
            .into_iter()
            .map(|Requirement::Text(r)| r)
            .collect(),
        requires_python,
    })
}

/// The `python_version` for a script: `given` when it satisfies `requires_python` (an error
/// naming both when not), else `current` when it does, else the oldest minor version that does.
pub fn python_version(
    requires_python: Option<&str>,
    given: Option<&str>,
    current: &str,
    name: &str,
) -> Result<String> {
    let Some(spec) = requires_python else {
        return Ok(given.unwrap_or(current).to_owned());
    };
    let specifiers = VersionSpecifiers::from_str(spec).map_err(|e| {
        Error::spec(
            "python_version",
            format!("requires-python {spec:?} of {name}: {e}"),
        )
    })?;
    let fits = |minor: &str| {
        // A minor version fits when one of its releases does (">=3.11.4" takes "3.11").
        let Ok(v) = Version::from_str(minor) else {
            return false;
        };
        let release = v.release().to_vec();
        if release.len() >= 3 {
            return specifiers.contains(&v);
        }
        (0..=99u64).any(|patch| {
            let mut r = release.clone();
            r.resize(2, 0);
            r.push(patch);
            specifiers.contains(&Version::new(r))
        })
    };
    if let Some(given) = given {
        if fits(given) {
            return Ok(given.to_owned());
        }
        return Err(Error::spec(
            "python_version",
            format!(
                "{given} does not satisfy requires-python {spec:?} of {name}; leave python_version out \
                 (it is then chosen from requires-python) or give one that satisfies it"
            ),
        ));
    }
    if fits(current) {
        return Ok(current.to_owned());
    }
    MINORS.map(|m| format!("3.{m}")).find(|v| fits(v)).ok_or_else(|| {
        Error::spec(
            "python_version",
            format!(
                "no Python 3.{}-3.{} satisfies requires-python {spec:?} of {name}",
                MINORS.start(),
                MINORS.end()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, usize, String) {
        match parse(text, "job.py") {
            Err(Error::File {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected a file error, got {other:?}"),
        }
    }

    #[test]
    fn the_peps_example_is_read() {
        let text = "# /// script\n# requires-python = \">=3.11\"\n# dependencies = [\n#   \"requests<3\",\n#   \"rich\",\n# ]\n# ///\n\nimport requests\n";
        let meta = parse(text, "job.py").unwrap();
        assert_eq!(meta.dependencies, ["requests<3", "rich"]);
        assert_eq!(meta.requires_python.as_deref(), Some(">=3.11"));
    }

    #[test]
    fn the_last_closing_line_of_the_comment_run_closes_the_block() {
        // As the PEP's reference regex: "# ///" inside the block's TOML (a string here) does not end it.
        let text = "#!/usr/bin/env python\n# /// script\n# dependencies = [\"a\"]\n# [tool.x]\n# note = \"\"\"\n# ///\n# \"\"\"\n# ///\nprint(1)\n";
        let meta = parse(text, "job.py").unwrap();
        assert_eq!(meta.dependencies, ["a"]);
    }

    #[test]
    fn other_blocks_and_no_dependencies() {
        // Blocks are apart when a line that is not a comment separates them (else, as in the PEP's
        // reference regex, the first runs to the last `# ///`).
        let text = "# /// pyproject\n# x = 1\n# ///\n\n# /// script\n# requires-python = \">=3.9\"\n# ///\n";
        let meta = parse(text, "job.py").unwrap();
        assert!(meta.dependencies.is_empty());
    }

    #[test]
    fn bad_blocks_name_the_line_and_column() {
        assert_eq!(err("print(1)\n").0, 1);
        let (line, _, m) = err("x = 1\n# /// script\n# dependencies = []\nprint(1)\n");
        assert_eq!(line, 2);
        assert!(m.contains("not closed"), "{m}");
        let (line, _, m) = err("# /// script\n# ///\n\n# /// script\n# ///\n");
        assert_eq!(line, 4);
        assert!(m.contains("second"), "{m}");
        // TOML errors point into the script: line 3, after "# dependencies = [".
        let (line, column, m) =
            err("# /// script\n# requires-python = \">=3.9\"\n# dependencies = [1]\n# ///\n");
        assert_eq!((line, column), (3, 18), "{m}"); // the value of `dependencies`
        let (line, _, m) = err("# /// script\n# dependency = [\"a\"]\n# ///\n");
        assert_eq!(line, 2);
        assert!(m.contains("dependency"), "{m}");
        let (_, _, m) = err("# /// script\n# requires-python = \"3.11+\"\n# ///\n");
        assert!(m.contains("requires-python"), "{m}");
    }

    #[test]
    fn python_version_follows_requires_python() {
        let v = |req: Option<&str>, given: Option<&str>, current: &str| {
            python_version(req, given, current, "job.py")
        };
        assert_eq!(v(None, None, "3.11").unwrap(), "3.11");
        assert_eq!(v(Some(">=3.10"), None, "3.11").unwrap(), "3.11");
        assert_eq!(v(Some(">=3.12"), None, "3.11").unwrap(), "3.12");
        assert_eq!(v(Some(">=3.11.4"), None, "3.11").unwrap(), "3.11");
        assert_eq!(v(Some("<3.10"), None, "3.11").unwrap(), "3.9");
        assert_eq!(v(Some(">=3.10"), Some("3.12"), "3.11").unwrap(), "3.12");
        let e = v(Some(">=3.12"), Some("3.10"), "3.11").unwrap_err().to_string();
        assert!(e.starts_with("python_version: 3.10 does not satisfy"), "{e}");
        assert!(v(Some(">=4"), None, "3.11").is_err());
    }
}
