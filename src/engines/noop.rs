//! The engine that builds nothing: the spec's base image is the image (a prebuilt image named
//! through a spec, as flytekit's `noop` builder does).

use super::{leading_digest, Built, Engine, Request};
use crate::error::{Error, Result};
use crate::spec::{BaseImage, Spec};

pub struct Noop;

impl Engine for Noop {
    fn name(&self) -> &str {
        "noop"
    }

    fn probe(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    fn build(&self, request: &Request<'_>) -> Result<Built> {
        resolve(request.spec)
    }
}

/// The base image's name as given, with its digest when the name pins one.
pub fn resolve(spec: &Spec) -> Result<Built> {
    match &spec.base_image {
        Some(BaseImage::Name(name)) => Ok(Built {
            name: name.clone(),
            digest: name.split_once('@').and_then(|(_, d)| leading_digest(d)),
        }),
        Some(BaseImage::Spec(_)) => Err(Error::build(format!(
            "noop: {} has a spec as base_image, which would have to be built; noop only names an \
             existing image: give base_image as an image name",
            spec.name
        ))),
        None => Err(Error::build(format!(
            "noop: {} has no base_image; noop builds nothing and uses base_image as the image",
            spec.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Context, RawBase, RawSpec};

    fn spec(base: Option<RawBase>) -> Spec {
        let raw = RawSpec {
            name: Some("app".into()),
            base_image: base,
            ..Default::default()
        };
        Spec::from_raw(raw, &Context::here("3.11").unwrap()).unwrap()
    }

    #[test]
    fn names_the_base_as_given() {
        let b = resolve(&spec(Some(RawBase::Name("ghcr.io/o/base:1".into())))).unwrap();
        assert_eq!(
            b,
            Built {
                name: "ghcr.io/o/base:1".into(),
                digest: None
            }
        );
        let hex = "b".repeat(64);
        let pinned = format!("ghcr.io/o/base@sha256:{hex}");
        let b = resolve(&spec(Some(RawBase::Name(pinned.clone())))).unwrap();
        assert_eq!(b.name, pinned);
        assert_eq!(b.digest, Some(format!("sha256:{hex}")));
    }

    #[test]
    fn refuses_no_base_or_a_base_spec() {
        let e = resolve(&spec(None)).unwrap_err().to_string();
        assert!(e.contains("no base_image"), "{e}");
        let inner = RawSpec {
            name: Some("base".into()),
            ..Default::default()
        };
        let e = resolve(&spec(Some(RawBase::Raw(Box::new(inner)))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec as base_image"), "{e}");
    }
}
