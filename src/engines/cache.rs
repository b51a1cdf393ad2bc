//! `builder_options={"cache": "registry"}`: the engines' layer cache kept in the registry, so a
//! fresh machine (a CI runner, a colleague's laptop) reuses the steps another machine built.
//!
//! Each engine's own mechanism, under a name derived from the image's repository:
//! * docker with BuildKit built in: the image carries its cache (`BUILDKIT_INLINE_CACHE=1`) and is
//!   also tagged `<repository>:imagespec-cache` after the push; the next build reads it with
//!   `--cache-from`;
//! * docker buildx: `--cache-to`/`--cache-from type=registry,ref=<repository>:imagespec-cache`
//!   (every step, `mode=max`);
//! * buildah and podman: `--cache-to`/`--cache-from <repository>/imagespec-cache`, a repository
//!   of one cached step per tag (this needs `--layers`, which the option turns on).
//!
//! Credentials are the image's. A cache that cannot be read (not there yet, deleted, refused) is
//! reported by the engine and the step is built: it never changes what an image contains, only
//! whether a step runs.

use crate::error::{Error, Result};
use crate::spec::{option_str, Spec};

/// The tag of the image that carries docker's inline cache.
pub const DOCKER_CACHE_TAG: &str = "imagespec-cache";
/// The repository (under the image's) of buildah's cached steps.
pub const BUILDAH_CACHE_REPOSITORY: &str = "imagespec-cache";

/// Whether the spec keeps its engine's cache in the registry (`Some(repository)`), checked:
/// `cache` is `"local"` (the default) or `"registry"`, and a registry cache needs a registry.
pub fn registry_cache(spec: &Spec) -> Result<Option<String>> {
    match option_str(spec, "cache")? {
        None | Some("local") => Ok(None),
        Some("registry") if spec.registry.is_none() => Err(Error::spec(
            "builder_options.cache",
            "\"registry\" keeps the build cache in the image's registry, and this spec has none; set registry",
        )),
        Some("registry") => Ok(Some(spec.repository())),
        Some(other) => Err(Error::spec(
            "builder_options.cache",
            format!("{other:?} is not a cache: give \"registry\" (kept in the image's registry) or \"local\""),
        )),
    }
}

/// Tags the pushed `image` (`repository:tag@digest` or `repository:tag`) as the inline cache too,
/// in the registry (no engine run): its manifest is PUT again under [`DOCKER_CACHE_TAG`].
pub fn tag_docker_cache(spec: &Spec, image: &str) -> std::result::Result<String, String> {
    let client = crate::engines::native::client::new(spec).map_err(|e| e.to_string())?;
    let rt = crate::support::runtime::runtime().map_err(|e| e.to_string())?;
    let source = crate::reference::Reference::parse(image).map_err(|e| e.to_string())?;
    let target = format!("{}:{DOCKER_CACHE_TAG}", spec.repository());
    rt.block_on(async {
        let (doc, media_type, _) = client.get_manifest(&source).await?;
        let body = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
        client
            .put_manifest(&source, DOCKER_CACHE_TAG, &body, &media_type)
            .await
    })?;
    Ok(target)
}
