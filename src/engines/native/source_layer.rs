//! Source-only builds: an image whose spec differs from a pushed one only in its `source_root`
//! files is made in the registry, with no engine, from its dependencies image.
//!
//! After a full build by docker, buildah, podman or native, [`record`] pushes the image without
//! its source layer under its dependencies tag ([`crate::identity::deps_tag`]: what the tag is
//! made of, except the source files). It does so only once the image's last layer is checked to
//! hold exactly the spec's source files, byte for byte, so the dependencies image never holds a
//! stale file. A later spec with the same dependencies tag is built by [`build`]: that image's
//! manifest and config are read, a deterministic source layer is made here (the native builder's
//! tar code), the config gets the spec's labels and id, and only the layer, the config and the
//! manifest are pushed, the tag last. docs/builds.md says when each path is taken.

use super::base::{self, Base, Descriptor};
use super::{
    client, config, io_error, layers, options, platforms, private_cache_root, publish, skeleton, temp_dir_in,
};
use crate::dockerfile::recipe::Recipe;
use crate::dockerfile::BuildOptions;
use crate::engines::{Built, Request};
use crate::registry::Client;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The label of a dependencies image that names its dependencies tag: an image pushed under
/// that tag by anything else (a retag, a stale push) is not used.
pub const DEPS_LABEL: &str = "dev.imagespec.deps";
/// The `dev.imagespec.engine` label of an image made by a source-only build.
pub const SOURCE_ONLY_ENGINE: &str = "source-layer";
/// The engines whose images end with the source layer (docs/image-layout.md).
const ENGINES: [&str; 4] = ["docker", "buildah", "podman", super::NAME];
/// The most a source layer may hold, uncompressed, for the check of what it holds.
const MAX_SOURCE_BYTES: u64 = 4 << 30;
/// The most layers looked at from the end of an image for its source layer (folder-only layers
/// such as BuildKit's `WORKDIR` may follow it).
const MAX_TRAILING: usize = 3;

/// What [`build`] did.
pub enum Attempt {
    /// The image was made from its dependencies image.
    Built(Built, String),
    /// Not a case for a source-only build (no source, a forced build…).
    NotApplicable,
    /// No dependencies image yet (the first build of these dependencies).
    NoDeps,
    /// A dependencies image that cannot be used, in one line: a full build follows.
    Refused(String),
}

/// Why `request` cannot have a source-only build or a dependencies image, or `None` when it can.
fn not_applicable(request: &Request<'_>, engine: &str, recipe: &Recipe) -> Option<&'static str> {
    let spec = request.spec;
    if !request.push || spec.registry.is_none() {
        return Some("no registry");
    }
    if !ENGINES.contains(&engine) {
        return Some("an engine whose image layout imagespec does not make");
    }
    if !recipe.has_source {
        return Some("no source files");
    }
    if recipe.source_first {
        return Some("commands_need_source puts the source before the commands");
    }
    if platforms(spec).map_or(true, |p| p.is_empty()) {
        return Some("no platform");
    }
    if engine == super::NAME && super::builder_option(spec, "docker_archive").is_some() {
        return Some("a docker archive is asked for");
    }
    None
}

fn recipe_of(request: &Request<'_>, engine: &str) -> crate::Result<Recipe> {
    let options = BuildOptions {
        engine: engine.to_owned(),
        ..request.options.clone()
    };
    Recipe::new(request.spec, &options)
}

/// Makes `request`'s image from its dependencies image, when there is one and the spec allows it.
pub fn build(request: &Request<'_>, engine: &str) -> Attempt {
    let spec = request.spec;
    if spec.force_push || request.no_cache {
        return Attempt::NotApplicable;
    }
    let recipe = match recipe_of(request, engine) {
        Ok(r) => r,
        Err(_) => return Attempt::NotApplicable,
    };
    if not_applicable(request, engine, &recipe).is_some() {
        return Attempt::NotApplicable;
    }
    match build_from_deps(request, &recipe) {
        Ok(Some(built)) => Attempt::Built(built, format!("{}:{}", spec.repository(), recipe.deps_tag)),
        Ok(None) => Attempt::NoDeps,
        Err(why) => Attempt::Refused(crate::registry::clean_text(&why)),
    }
}

fn build_from_deps(request: &Request<'_>, recipe: &Recipe) -> Result<Option<Built>, String> {
    let spec = request.spec;
    let platforms = platforms(spec)?;
    let opts = options(spec, &platforms)?;
    let client = std::sync::Arc::new(client::new(spec).map_err(|e| e.to_string())?);
    let rt = crate::support::runtime::runtime().map_err(|e| e.to_string())?;
    let deps_name = format!("{}:{}", spec.repository(), recipe.deps_tag);
    // One dependencies image per platform (an index of them for several), each checked.
    let mut deps = Vec::with_capacity(platforms.len());
    for platform in &platforms {
        match rt.block_on(base::resolve(&client, &deps_name, platform)) {
            Ok(d) => deps.push(checked(d, &deps_name, recipe)?),
            Err(e) if e.contains("(HTTP 404)") => return Ok(None),
            Err(e) => return Err(format!("dependencies image {deps_name}: {e}")),
        }
    }
    let root = private_cache_root().map_err(|e| e.to_string())?;
    let work = temp_dir_in(&root.join("work")).map_err(|e| e.to_string())?;
    let mtime = layers::epoch();
    let step = |s: &str| (request.progress)(crate::engines::Progress::Step(s));
    step(&format!(
        "source only: the dependencies image {deps_name} is there; no engine runs"
    ));
    // The source layer is the same bytes for every platform: made once.
    let layer = skeleton::files_layer(
        recipe,
        "source/",
        "source",
        work.path(),
        mtime,
        opts.compression,
        &step,
    )
    .map_err(|e| e.to_string())?
    .ok_or("no source files")?;
    let layers = [layer];
    let made: Vec<(Vec<u8>, Vec<u8>)> = deps
        .iter()
        .map(|d| {
            let meta = config::ImageMeta {
                env: &spec.env,
                entrypoint: spec.entrypoint.as_deref(),
                labels: crate::dockerfile::render::image_labels(spec, recipe, SOURCE_ONLY_ENGINE),
                id: &recipe.id,
                flytekit_id: request.options.flytekit_id(request.image),
                created: config::rfc3339(mtime),
            };
            let cfg = config::config(d, &layers, &meta);
            let manifest = config::manifest(d, &layers, &cfg);
            (cfg, manifest)
        })
        .collect();
    (request.progress)(crate::engines::Progress::Pushing(request.image));
    let (stats, digest) = rt.block_on(push_per_platform(&client, &deps, &layers, &made, request.image))?;
    step(&format!(
        "pushed {}: {} blobs uploaded, {} present",
        request.image,
        stats.uploaded,
        stats.present + stats.mounted
    ));
    Ok(Some(Built {
        name: format!("{}@{digest}", request.image),
        digest: Some(digest),
    }))
}

/// Pushes one image per platform to `target` (`deps[i]` with `layers` on top, as `made[i]`: its
/// config and manifest), with an index over them when there are several; returns the push's
/// figures and the digest the tag names.
async fn push_per_platform(
    client: &std::sync::Arc<Client>,
    deps: &[Base],
    layers: &[layers::Layer],
    made: &[(Vec<u8>, Vec<u8>)],
    target: &str,
) -> Result<(publish::registry::Stats, String), String> {
    let images: Vec<publish::registry::Image<'_>> = deps
        .iter()
        .zip(made)
        .map(|(d, (cfg, manifest))| publish::registry::Image {
            base: d,
            layers,
            config: cfg,
            manifest,
        })
        .collect();
    let index = (made.len() > 1).then(|| {
        let pairs: Vec<(&[u8], &[u8])> = made.iter().map(|(c, m)| (m.as_slice(), c.as_slice())).collect();
        config::index(&pairs)
    });
    let stats = publish::registry::push(client, &images, index.as_deref(), target).await?;
    let digest = crate::oci::sha256_of(index.as_deref().unwrap_or(&made[0].1));
    Ok((stats, digest))
}

/// `deps` when it is the dependencies image `recipe` names: its label says so and its config and
/// manifest agree on its layers.
fn checked(deps: Base, deps_name: &str, recipe: &Recipe) -> Result<Base, String> {
    let label = deps
        .config
        .pointer(&format!("/config/Labels/{}", DEPS_LABEL.replace('/', "~1")))
        .and_then(|v| v.as_str());
    if label != Some(recipe.deps_tag.as_str()) {
        return Err(format!(
            "{deps_name} is not the dependencies image it names (its {DEPS_LABEL} label is {label:?}): it was \
             retagged or pushed by something else"
        ));
    }
    let diff_ids = deps
        .config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map_or(0, Vec::len);
    if diff_ids != deps.layers.len() {
        return Err(format!(
            "{deps_name}: its config lists {diff_ids} layers and its manifest {}",
            deps.layers.len()
        ));
    }
    Ok(deps)
}

/// After a full build of `request` by `engine`, pushes the image without its source layer under
/// its dependencies tag. `Ok(None)`: not a case for it; `Err`: why it was not pushed (a warning,
/// the build stands).
pub fn record(request: &Request<'_>, engine: &str, built: &Built) -> Result<Option<String>, String> {
    let recipe = recipe_of(request, engine).map_err(|e| e.to_string())?;
    if not_applicable(request, engine, &recipe).is_some() {
        return Ok(None);
    }
    let spec = request.spec;
    let platforms = platforms(spec)?;
    let client = std::sync::Arc::new(client::new(spec).map_err(|e| e.to_string())?);
    let rt = crate::support::runtime::runtime().map_err(|e| e.to_string())?;
    let full = match &built.digest {
        Some(d) => format!("{}@{d}", spec.repository()),
        None => request.image.to_owned(),
    };
    let deps_name = format!("{}:{}", spec.repository(), recipe.deps_tag);
    let mut deps = Vec::with_capacity(platforms.len());
    let mut sources = Vec::with_capacity(platforms.len());
    for platform in &platforms {
        let image = rt.block_on(base::resolve(&client, &full, platform))?;
        let (d, source) = rt.block_on(without_source(&client, &image, &recipe, engine))?;
        deps.push(d);
        sources.push(source.digest);
    }
    let made: Vec<(Vec<u8>, Vec<u8>)> = deps
        .iter()
        .map(|d| {
            let cfg = serde_json::to_vec(&d.config).map_err(|e| e.to_string())?;
            let manifest = config::manifest(d, &[], &cfg);
            Ok((cfg, manifest))
        })
        .collect::<Result<_, String>>()?;
    rt.block_on(push_per_platform(&client, &deps, &[], &made, &deps_name))?;
    sources.dedup();
    Ok(Some(format!(
        "recorded the dependencies image {deps_name} (the image without its source layer {})",
        sources.join(", ")
    )))
}

/// `image` without its source layer and what follows it: the dependencies image's base form
/// (its config without those layers' diff ids and history, with the label naming the
/// dependencies tag) and the source layer's descriptor.
///
/// The source layer is the last layer with files; it must hold exactly the recipe's source files.
/// Layers after it may hold folders only (BuildKit's `WORKDIR /root` makes one): they go too,
/// since the source layer a source-only build writes sets `/root` itself.
async fn without_source(
    client: &Client,
    image: &Base,
    recipe: &Recipe,
    engine: &str,
) -> Result<(Base, Descriptor), String> {
    let history: Vec<serde_json::Value> = image
        .config
        .pointer("/history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    let is_layer = |h: &serde_json::Value| h.get("empty_layer").and_then(|e| e.as_bool()) != Some(true);
    let made = history.iter().filter(|h| is_layer(h)).count();
    if !history.is_empty() && made != image.layers.len() {
        return Err(format!(
            "{}: its history names {made} layers and its manifest has {}",
            image.reference,
            image.layers.len()
        ));
    }
    let mut at = image.layers.len();
    let source = loop {
        if at == 0 || image.layers.len() - at >= MAX_TRAILING {
            return Err(format!("{}: no layer holds its source", image.reference));
        }
        at -= 1;
        let layer = &image.layers[at];
        let path = client::blob_file(client, &image.reference, &layer.digest).await?;
        match check_source_layer(&path, &layer.media_type, recipe) {
            Ok(Held::FoldersOnly) => continue,
            Ok(Held::Source) => break layer.clone(),
            Err(e) => {
                let hint = if engine == "buildah" {
                    "; buildah on the vfs driver commits one layer for the whole build: give \
                     builder_options layers=true for source-only builds"
                } else {
                    ""
                };
                return Err(format!(
                    "{}: its last layer with files is not its source ({e}){hint}",
                    image.reference
                ));
            }
        }
    };
    let mut deps = image.clone();
    deps.layers.truncate(at);
    let cfg = deps
        .config
        .as_object_mut()
        .ok_or("the image's config is not an object")?;
    if let Some(ids) = cfg
        .get_mut("rootfs")
        .and_then(|r| r.get_mut("diff_ids"))
        .and_then(|d| d.as_array_mut())
    {
        ids.truncate(at);
    }
    if !history.is_empty() {
        // Up to the source layer's entry: it and the metadata after it are remade by every
        // source-only build.
        let cut = history
            .iter()
            .enumerate()
            .filter(|(_, h)| is_layer(h))
            .nth(at)
            .map_or(history.len(), |(i, _)| i);
        cfg.insert(
            "history".into(),
            serde_json::Value::Array(history[..cut].to_vec()),
        );
    }
    let c = cfg
        .entry("config")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or("the image's config has no config object")?;
    let labels = c.entry("Labels").or_insert_with(|| serde_json::json!({}));
    if !labels.is_object() {
        *labels = serde_json::json!({});
    }
    labels[DEPS_LABEL] = serde_json::Value::String(recipe.deps_tag.clone());
    Ok((deps, source))
}

/// What a layer after the dependencies holds.
enum Held {
    /// The recipe's source files, and nothing else but folders.
    Source,
    /// Folders only.
    FoldersOnly,
}

/// What the layer at `path` holds: the recipe's `source/` files and nothing else (folders aside),
/// every regular file with the same bytes and every symlink with the same target; or folders
/// only. Anything else is an error naming the first file that is not as expected.
fn check_source_layer(path: &Path, media_type: &str, recipe: &Recipe) -> Result<Held, String> {
    use crate::source::FileKind;
    let mut want: BTreeMap<String, &FileKind> = recipe
        .selection
        .values()
        .filter_map(|f| {
            f.key
                .strip_prefix("source/")
                .map(|rest| (format!("root/{rest}"), &f.file.kind))
        })
        .collect();
    let total = want.len();
    let file = std::fs::File::open(path).map_err(|e| io_error("read", path, &e).to_string())?;
    let reader: Box<dyn Read> = if media_type.contains("zstd") {
        Box::new(zstd::Decoder::new(file).map_err(|e| e.to_string())?)
    } else if media_type.ends_with("gzip") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut archive = tar::Archive::new(reader.take(MAX_SOURCE_BYTES));
    for entry in archive.entries().map_err(|e| format!("unreadable layer: {e}"))? {
        let mut entry = entry.map_err(|e| format!("unreadable layer: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let name = name.trim_start_matches("./").trim_start_matches('/').to_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        let Some(expected) = want.remove(&name) else {
            return Err(format!("{name} is not a source file"));
        };
        let same = match (expected, kind) {
            (FileKind::Regular { sha256, .. }, t) if t.is_file() => {
                sha256_of_reader(&mut entry).map_err(|e| format!("unreadable layer: {e}"))? == *sha256
            }
            (FileKind::Symlink { target }, t) if t.is_symlink() => entry
                .link_name()
                .ok()
                .flatten()
                .is_some_and(|l| l.to_string_lossy() == target.as_str()),
            _ => false,
        };
        if !same {
            return Err(format!("{name} differs from the source file"));
        }
    }
    match want.keys().next() {
        None => Ok(Held::Source),
        Some(_) if want.len() == total => Ok(Held::FoldersOnly),
        Some(missing) => Err(format!("{missing} is missing")),
    }
}

fn sha256_of_reader(r: &mut impl Read) -> std::io::Result<[u8; 32]> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}
