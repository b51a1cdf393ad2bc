//! Platforms (`os/arch[/variant]`) as specs write them and as indexes and configs describe them.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(ok) {
            return Err(format!(
                "invalid platform {s:?}: expected os/arch or os/arch/variant, e.g. linux/amd64"
            ));
        }
        Ok(Self::new(parts[0], parts[1], parts.get(2).copied()))
    }

    /// This machine's platform (what an engine here builds by default).
    pub fn host() -> Self {
        Self::new("linux", std::env::consts::ARCH, None)
    }

    fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        let arch = match arch.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            a => a.to_string(),
        };
        let mut variant = variant.filter(|v| !v.is_empty()).map(str::to_ascii_lowercase);
        if arch == "arm64" && variant.as_deref() == Some("v8") {
            variant = None;
        }
        Platform {
            os: os.to_ascii_lowercase(),
            arch,
            variant,
        }
    }

    /// From an index entry's `platform` or an image config (`os`, `architecture`, `variant`).
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str());
        Some(Self::new(s("os")?, s("architecture")?, s("variant")))
    }

    /// Whether an image for `self` serves a request for `wanted` (no variant asked: any variant).
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.arch == wanted.arch
            && (wanted.variant.is_none() || self.variant == wanted.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        assert_eq!(Platform::parse("linux/amd64").unwrap().to_string(), "linux/amd64");
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
        for bad in ["linux", "linux/", "a/b/c/d", "linux/amd 64", ""] {
            assert!(
                Platform::parse(bad).unwrap_err().contains("expected os/arch"),
                "{bad}"
            );
        }
    }

    #[test]
    fn matches_variants() {
        let arm7 = Platform::parse("linux/arm/v7").unwrap();
        let arm = Platform::parse("linux/arm").unwrap();
        assert!(arm7.satisfies(&arm));
        assert!(!arm.satisfies(&arm7));
        let j = serde_json::json!({"os": "linux", "architecture": "aarch64", "variant": "v8"});
        assert!(Platform::from_json(&j)
            .unwrap()
            .satisfies(&Platform::parse("linux/arm64").unwrap()));
    }
}
