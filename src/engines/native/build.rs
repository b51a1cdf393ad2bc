//! One build from start to end: every platform's base resolved first (a platform the base lacks
//! fails before anything is made), the copied files' layers made once, then per platform the
//! skeleton, the packages and the runtime layers, the config and the manifest; then the image (or
//! the index of them) published: pushed, or written as an OCI layout, and as a docker archive on
//! request.

use super::layers::{self, Layer};
use super::packages::InstallCtx;
use super::remote_cache::RemoteCache;
use super::{base, builder_option, client, config, fail, io_error, options, platforms};
use super::{private_cache_root, publish, python, refuse, skeleton, temp_dir_in, NAME};
use crate::dockerfile::recipe::Recipe;
use crate::dockerfile::BuildOptions;
use crate::engines::{Built, Progress, Request};
use crate::error::Result;
use crate::runtime::Runtime;
use std::path::PathBuf;

/// What one platform's build made.
struct PlatformImage {
    base: base::Base,
    layers: Vec<Layer>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

/// Builds (and pushes) one image, or one per platform and their index.
pub fn build(request: &Request<'_>) -> Result<Built> {
    let spec = request.spec;
    let image = request.image;
    refuse(spec).map_err(|why| fail(image, why))?;
    let platforms = platforms(spec).map_err(|e| fail(image, e))?;
    let opts = options(spec, &platforms).map_err(|e| fail(image, e))?;
    let options = BuildOptions {
        engine: NAME.to_owned(),
        ..request.options.clone()
    };
    let plan = Recipe::new(spec, &options)?;
    let step = |s: &str| (request.progress)(Progress::Step(s));
    let several = platforms.len() > 1;
    let client = std::sync::Arc::new(client::new(spec)?);
    let rt = crate::support::runtime::runtime()?;
    // Every platform's base first: one the base lacks fails before anything is built.
    let mut bases = Vec::new();
    for platform in &platforms {
        step(&format!("resolve base {} for {platform}", plan.from));
        bases.push(
            rt.block_on(base::resolve(&client, &plan.from, platform))
                .map_err(|e| fail(image, e))?,
        );
    }
    // With docker_archive the layers' files are needed here: not from the registry cache.
    let remote = match opts.docker_archive {
        None if request.push => RemoteCache::of(spec, client.clone())?,
        _ => None,
    };
    let mut used: Vec<(String, Vec<Layer>)> = Vec::new();
    let root = private_cache_root()?;
    let work = temp_dir_in(&root.join("work"))?;
    let mtime = layers::epoch();
    // The copied files are the same on every platform: their layers are made once.
    let file_layers = skeleton::files_layers(&plan, work.path(), mtime, opts.compression, &step)?;

    let mut built: Vec<PlatformImage> = Vec::new();
    for (platform, base) in platforms.iter().zip(bases) {
        let on = if several {
            format!(" ({platform})")
        } else {
            String::new()
        };
        let facts = rt
            .block_on(python::facts(&client, &base, &plan.from))
            .map_err(|e| fail(image, e))?;
        if let Some(want) = &spec.python_version {
            if facts.version != *want && !facts.version.starts_with(&format!("{want}.")) {
                return Err(fail(
                    image,
                    format!(
                        "the base image's Python{on} is {} ({}) but the spec's python_version is {want}; change one of them",
                        facts.version, facts.exe
                    ),
                ));
            }
        }
        // uv installs into a folder of the platform's own.
        let pwork = work.path().join(format!("{}-{}", platform.os, platform.arch));
        std::fs::create_dir_all(&pwork).map_err(|e| io_error("create", &pwork, &e))?;
        let mut new_layers: Vec<Layer> = Vec::new();
        step(&format!("layer: venv, user and /root{on}"));
        new_layers.push(layers::build_layer(
            &skeleton::skeleton(&facts),
            &pwork,
            "imagespec: /opt/venv, user 1000, /root",
            mtime,
            opts.compression,
            None,
        )?);
        let mut ctx = InstallCtx::new(spec, request, &plan, &facts, platform, &root, &pwork)?;
        ctx.compression = opts.compression;
        ctx.remote = remote.as_ref();
        if !spec.packages.is_empty()
            || !spec.runtime_packages.is_empty()
            || plan.requirements.is_some()
            || plan.project.is_some()
        {
            step(&format!("layer: Python packages{on}"));
            new_layers.extend(ctx.packages(mtime).map_err(|e| fail(image, e))?);
        }
        if ctx.runtime != Runtime::Off {
            step(&format!("layer: imagespec runtime{on}"));
            new_layers.extend(ctx.runtime(mtime).map_err(|e| fail(image, e))?);
        }
        used.extend(ctx.used.take());
        new_layers.extend(file_layers.iter().cloned());

        let meta = config::ImageMeta {
            env: &spec.env,
            entrypoint: spec.entrypoint.as_deref(),
            labels: crate::dockerfile::render::image_labels(spec, &plan, NAME),
            id: &plan.id,
            flytekit_id: request.options.flytekit_id(image),
            created: config::rfc3339(mtime),
        };
        let cfg = config::config(&base, &new_layers, &meta);
        let manifest = config::manifest(&base, &new_layers, &cfg);
        built.push(PlatformImage {
            base,
            layers: new_layers,
            config: cfg,
            manifest,
        });
    }

    let images: Vec<publish::registry::Image<'_>> = built
        .iter()
        .map(|b| publish::registry::Image {
            base: &b.base,
            layers: &b.layers,
            config: &b.config,
            manifest: &b.manifest,
        })
        .collect();
    let index = several.then(|| {
        config::index(
            &built
                .iter()
                .map(|b| (b.manifest.as_slice(), b.config.as_slice()))
                .collect::<Vec<_>>(),
        )
    });
    let digest = crate::oci::sha256_of(index.as_deref().unwrap_or(&built[0].manifest));
    let name = if request.push {
        (request.progress)(Progress::Pushing(image));
        let stats = rt
            .block_on(publish::registry::push(&client, &images, index.as_deref(), image))
            .map_err(|e| fail(image, e))?;
        step(&format!(
            "pushed {image}{}: {} blobs uploaded, {} mounted, {} present",
            if several { " (index)" } else { "" },
            stats.uploaded,
            stats.mounted,
            stats.present
        ));
        if let Some(remote) = &remote {
            for (key, layers) in &used {
                if let Err(why) = rt.block_on(remote.put(key, layers)) {
                    step(&format!("registry cache not written: {why}"));
                }
            }
        }
        format!("{image}@{digest}")
    } else {
        let dir = builder_option(spec, "oci_layout")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("oci").join(&spec.name));
        let tag = plan.tag.clone();
        rt.block_on(publish::registry::write_layout(
            &client,
            &images,
            index.as_deref(),
            &dir,
            &tag,
        ))
        .map_err(|e| fail(image, e))?;
        step(&format!("wrote the OCI layout {} (tag {tag})", dir.display()));
        image.to_owned()
    };
    if let Some(path) = &opts.docker_archive {
        rt.block_on(publish::archive::write(&client, &images[0], image, path))
            .map_err(|e| fail(image, e))?;
        step(&format!("wrote the docker archive {} ({image})", path.display()));
    }
    Ok(Built {
        name,
        digest: Some(digest),
    })
}
