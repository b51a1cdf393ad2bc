//! Strict checks of the values that reach a build step as arguments: Python requirements
//! (PEP 508), Debian package names, conda match specs and channels, secret mount targets.
//!
//! Every value is passed to its tool as one argument (never through a shell), so these checks are
//! not what keeps a build safe; they turn a typo or a hostile value into a clear error naming the
//! field before anything runs, instead of a confusing failure deep inside a build.

use crate::error::{Error, Result};

/// Longest requirement accepted (pip has no limit; nothing real comes close).
const MAX_LEN: usize = 2000;

/// A PEP 508 requirement, stricter in two places: marker strings may not contain `$` or a
/// backtick, and a URL (`name @ url`) may only contain RFC 3986 characters without `'`, `$` or
/// a backtick, and no `${VAR}` (which pip would expand from the build's environment).
pub fn check_requirement(field: &str, s: &str) -> Result<()> {
    let hint = "is not a PEP 508 requirement like 'pandas', 'numpy>=1.26,<2', 'rich[jupyter]==13.7' \
                or 'pkg @ https://host/pkg.whl'";
    if s.len() > MAX_LEN {
        return Err(Error::spec(field, format!("is longer than {MAX_LEN} characters")));
    }
    // Messages show the requirement without the credentials of its URL.
    let shown = crate::redact::redact_userinfo(s);
    if s.trim_start().starts_with('-') {
        return Err(Error::spec(
            field,
            format!("{shown:?} is a pip option, not a requirement; put options in pip_extra_args"),
        ));
    }
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
    };
    match p.requirement() {
        Ok(()) => Ok(()),
        Err(at) => Err(Error::spec(
            field,
            format!("{shown:?} {hint} (unexpected text at character {})", at + 1),
        )),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

type Step = std::result::Result<(), usize>;

const MARKER_VARS: &[&str] = &[
    "python_version",
    "python_full_version",
    "os_name",
    "sys_platform",
    "platform_release",
    "platform_system",
    "platform_version",
    "platform_machine",
    "platform_python_implementation",
    "implementation_name",
    "implementation_version",
    "extra",
    // Legacy spellings pip still accepts.
    "os.name",
    "sys.platform",
    "platform.version",
    "platform.machine",
    "platform.python_implementation",
    "python_implementation",
];

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn fail<T>(&self) -> std::result::Result<T, usize> {
        Err(self.i)
    }

    fn ws(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i - start
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn requirement(&mut self) -> Step {
        self.ws();
        self.name()?;
        self.ws();
        if self.eat(b'[') {
            self.ws();
            if !self.eat(b']') {
                loop {
                    self.ws();
                    self.name()?;
                    self.ws();
                    if self.eat(b']') {
                        break;
                    }
                    if !self.eat(b',') {
                        return self.fail();
                    }
                }
            }
            self.ws();
        }
        if self.eat(b'@') {
            self.ws();
            self.url()?;
            let spaced = self.ws() > 0;
            if self.eat(b';') {
                if !spaced {
                    // PEP 508: a URL must be followed by a space before its marker.
                    return Err(self.i - 1);
                }
                self.ws();
                self.marker_or()?;
            }
        } else {
            if self.eat(b'(') {
                self.ws();
                self.version_many()?;
                self.ws();
                if !self.eat(b')') {
                    return self.fail();
                }
            } else if matches!(self.peek(), Some(b'<' | b'>' | b'=' | b'!' | b'~')) {
                self.version_many()?;
            }
            self.ws();
            if self.eat(b';') {
                self.ws();
                self.marker_or()?;
            }
        }
        self.ws();
        if self.i == self.s.len() {
            Ok(())
        } else {
            self.fail()
        }
    }

    /// `[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?`
    fn name(&mut self) -> Step {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b"._-".contains(&c)) {
            self.i += 1;
        }
        let name = &self.s[start..self.i];
        let ok = name.first().is_some_and(u8::is_ascii_alphanumeric)
            && name.last().is_some_and(u8::is_ascii_alphanumeric);
        if ok {
            Ok(())
        } else {
            Err(start)
        }
    }

    fn url(&mut self) -> Step {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b"-._~:/?#[]@!&()*+,;=%".contains(&c))
        {
            self.i += 1;
        }
        let url = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        let scheme_ok = url.split_once("://").is_some_and(|(scheme, rest)| {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
                && !rest.is_empty()
        });
        if !scheme_ok {
            return Err(start);
        }
        // A ';' glued to the URL is part of it for PEP 508, but confusing: refuse it.
        if url.ends_with(';') {
            return Err(self.i - 1);
        }
        Ok(())
    }

    fn version_many(&mut self) -> Step {
        loop {
            self.version_one()?;
            let save = self.i;
            self.ws();
            if !self.eat(b',') {
                self.i = save;
                return Ok(());
            }
            self.ws();
        }
    }

    fn version_op(&mut self) -> bool {
        ["===", "==", "!=", "<=", ">=", "~=", "<", ">"]
            .iter()
            .any(|op| self.eat_str(op))
    }

    fn version_one(&mut self) -> Step {
        if !self.version_op() {
            return self.fail();
        }
        self.ws();
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b"-_.*+!".contains(&c)) {
            self.i += 1;
        }
        if self.i == start {
            return self.fail();
        }
        Ok(())
    }

    fn marker_or(&mut self) -> Step {
        self.marker_and()?;
        while self.keyword("or") {
            self.marker_and()?;
        }
        Ok(())
    }

    fn marker_and(&mut self) -> Step {
        self.marker_expr()?;
        while self.keyword("and") {
            self.marker_expr()?;
        }
        Ok(())
    }

    /// Whitespace, `word`, whitespace; else nothing is consumed.
    fn keyword(&mut self, word: &str) -> bool {
        let save = self.i;
        self.ws();
        if self.eat_str(word) && (self.ws() > 0 || matches!(self.peek(), Some(b'(' | b'"' | b'\''))) {
            return true;
        }
        self.i = save;
        false
    }

    fn marker_expr(&mut self) -> Step {
        self.ws();
        if self.eat(b'(') {
            self.marker_or()?;
            self.ws();
            return if self.eat(b')') { Ok(()) } else { self.fail() };
        }
        self.marker_var()?;
        self.ws();
        if !(self.version_op() || self.eat_str("in") || self.not_in()) {
            return self.fail();
        }
        self.ws();
        self.marker_var()
    }

    fn not_in(&mut self) -> bool {
        let save = self.i;
        if self.eat_str("not") && self.ws() > 0 && self.eat_str("in") {
            return true;
        }
        self.i = save;
        false
    }

    fn marker_var(&mut self) -> Step {
        match self.peek() {
            Some(q @ (b'"' | b'\'')) => {
                self.i += 1;
                while let Some(c) = self.peek() {
                    if c == q {
                        self.i += 1;
                        return Ok(());
                    }
                    let allowed = c == b' '
                        || c.is_ascii_alphanumeric()
                        || b"().{}-_*#:;,/?[]!~@%^&=+|<>".contains(&c)
                        || (c == b'\'' || c == b'"');
                    if !allowed {
                        return self.fail();
                    }
                    self.i += 1;
                }
                self.fail()
            }
            _ => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'.') {
                    self.i += 1;
                }
                let word = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                if MARKER_VARS.contains(&word) {
                    Ok(())
                } else {
                    Err(start)
                }
            }
        }
    }
}

/// A conda match spec without spaces or brackets: `numpy`, `numpy>=1.26`, `conda-forge::numpy=1.26.*`.
pub fn check_conda_package(field: &str, s: &str) -> Result<()> {
    let ok = s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.+-=<>!*,|:~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::spec(
            field,
            format!(
                "{s:?} is not a conda package spec like 'numpy', 'numpy>=1.26' or 'conda-forge::numpy=1.26.*' \
                 (no spaces, brackets or quotes)"
            ),
        ))
    }
}

/// A conda channel: a name (`conda-forge`, `nvidia/label/cuda-12.1.0`) or a URL without credentials.
pub fn check_conda_channel(field: &str, s: &str) -> Result<()> {
    let ok = s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.+-:/~%".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::spec(
            field,
            format!(
                "{:?} is not a conda channel name or URL (credentials in channel URLs are not supported)",
                crate::redact::redact_userinfo(s)
            ),
        ))
    }
}

/// Where a secret is mounted during the install steps: an absolute path that a `--mount` flag
/// can carry without quoting (no ',', '=', quotes or spaces), without `..`.
pub fn check_mount_target(field: &str, s: &str) -> Result<()> {
    let ok = s.starts_with('/')
        && s.len() > 1
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._+@-".contains(c))
        && !s.split('/').any(|part| part == "..");
    if ok {
        Ok(())
    } else {
        Err(Error::spec(
            field,
            format!(
                "target {s:?} must be an absolute path of letters, digits and '/', '.', '_', '+', '@', '-' \
                 (it is written into a --mount flag)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep508_accepts_real_requirements() {
        for ok in [
            "pandas",
            "numpy>=1.26,<2",
            "numpy >= 1.26 , < 2",
            "rich[jupyter]==13.7",
            "rich[ jupyter , extra ]",
            "requests[]",
            "torch==2.3.0+cpu",
            "A.B-C_D",
            "typer~=0.9",
            "pkg===1.0",
            "pkg!=1.0.*",
            "pkg (>=1.0)",
            "name @ https://host/pkg-1.0-py3-none-any.whl",
            "name@git+https://github.com/org/repo@v1.0#egg=name",
            "name @ https://host/p.whl ; python_version < '3.12'",
            "pywin32; sys_platform == 'win32'",
            "pkg; python_version >= \"3.8\" and (os_name == 'posix' or extra == 'x')",
            "pkg ; 'linux' in sys_platform",
            "pkg ; platform_machine not in 'arm64 aarch64'",
        ] {
            check_requirement("packages[0]", ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
    }

    #[test]
    fn pep508_refuses_hostile_and_malformed_values() {
        for bad in [
            "",
            "pandas; rm -rf /",
            "$(id)",
            "pandas==$(id)",
            "`id`",
            "pandas`id`",
            "pandas && touch /pwned",
            "pandas | sh",
            "pandas\nRUN touch /pwned",
            "pandas\r",
            "pandas\"",
            "pandas'",
            "pandas\\",
            "-r requirements.txt",
            "--index-url=https://evil",
            "pkg; os_name == '$(id)'",
            "pkg; os_name == '`id`'",
            "name @ https://host/${TOKEN}/p.whl",
            "name @ https://host/p.whl;python_version<'3'",
            "name @ not-a-url",
            "pkg==",
            "pkg>=1,",
            "pkg[",
            "pkg[a,]",
            ".pkg",
            "pkg-",
            "pkg; unknown_var == '1'",
            "pkg; python_version",
            "pkg ==1 ==2",
        ] {
            assert!(
                check_requirement("packages[0]", bad).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn conda_specs_and_channels() {
        for ok in [
            "numpy",
            "numpy>=1.26",
            "conda-forge::numpy=1.26.*",
            "python=3.11|3.12",
            "_libgcc_mutex",
        ] {
            check_conda_package("conda_packages[0]", ok).unwrap();
        }
        for bad in ["-c", "numpy 1.2", "numpy[version='>=1']", "$(id)", "a;b"] {
            assert!(check_conda_package("conda_packages[0]", bad).is_err(), "{bad:?}");
        }
        check_conda_channel("conda_channels[0]", "conda-forge").unwrap();
        check_conda_channel("conda_channels[0]", "https://conda.example.com/ch").unwrap();
        assert!(check_conda_channel("conda_channels[0]", "https://u:p@host/ch").is_err());
        assert!(check_conda_channel("conda_channels[0]", "--override").is_err());
    }

    #[test]
    fn mount_targets_cannot_break_the_flag() {
        check_mount_target("t", "/etc/gitconfig").unwrap();
        check_mount_target("t", "/root/.netrc").unwrap();
        for bad in [
            "relative",
            "/",
            "/a,b",
            "/a=b",
            "/a b",
            "/a\"b",
            "/a/../b",
            "/a\nRUN x",
            "/$HOME",
        ] {
            assert!(check_mount_target("t", bad).is_err(), "{bad:?}");
        }
    }
}
