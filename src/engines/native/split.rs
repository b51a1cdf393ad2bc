//! Installed packages into layers: each file uv put in the install folder goes to its place in the
//! image (`bin/` into the venv's `bin`, the rest into site-packages), and each distribution of at
//! least [`OWN_LAYER_BYTES`] gets a layer of its own, so that a change of one small package does not
//! make the big ones upload again.

use super::layers::{self, Compression, Content, Layer, LayerSpec};
use super::OWN_LAYER_BYTES;
use crate::dockerfile::VENV;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Adds every file under `target` to `ls`: `bin/` into the venv's `bin`, the rest into `site`.
pub(super) fn add_tree(ls: &mut LayerSpec, target: &Path, site: &str) -> Result<()> {
    for (rel, content, exe) in walk(target)? {
        ls.add(&image_path(&rel, site), content, exe, 0);
    }
    Ok(())
}

fn image_path(rel: &str, site: &str) -> String {
    match rel.strip_prefix("bin/") {
        Some(name) => format!("{VENV}/bin/{name}"),
        None => format!("{site}/{rel}"),
    }
}

/// Every file and symlink under `root`, relative, sorted.
fn walk(root: &Path) -> Result<Vec<(String, Content, bool)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    let err = |p: &Path, e: std::io::Error| Error::build(format!("native: {}: {e}", p.display()));
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| err(&dir, e))? {
            let entry = entry.map_err(|e| err(&dir, e))?;
            let p = entry.path();
            let ft = entry.file_type().map_err(|e| err(&p, e))?;
            let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned();
            if ft.is_dir() {
                if entry.file_name() == "__pycache__" {
                    continue;
                }
                stack.push(p);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p).map_err(|e| err(&p, e))?;
                out.push((rel, Content::Symlink(t.to_string_lossy().into_owned()), false));
            } else {
                #[cfg(unix)]
                let exe = {
                    use std::os::unix::fs::PermissionsExt;
                    entry.metadata().map_err(|e| err(&p, e))?.permissions().mode() & 0o111 != 0
                };
                #[cfg(not(unix))]
                let exe = false;
                out.push((
                    rel,
                    Content::File {
                        path: p,
                        expect: None,
                    },
                    exe,
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The distribution each installed file belongs to, from the `RECORD` files.
fn owners(target: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(target) else {
        return out;
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(dist) = name.strip_suffix(".dist-info") else {
            continue;
        };
        let dist = dist.split('-').next().unwrap_or(dist).to_owned();
        let Ok(text) = std::fs::read_to_string(entry.path().join("RECORD")) else {
            continue;
        };
        for line in text.lines() {
            let path = line.split(',').next().unwrap_or("").trim_matches('"');
            let path = match path.strip_prefix("../../../") {
                Some(rest) => rest.to_owned(),
                None => path.to_owned(),
            };
            if !path.is_empty() {
                out.insert(path, dist.clone());
            }
        }
    }
    out
}

/// The installed packages as layers: each distribution of at least [`OWN_LAYER_BYTES`] in a layer
/// of its own (by name), then one layer with everything else.
pub(super) fn split_packages(
    target: &Path,
    site: &str,
    out: &Path,
    mtime: u64,
    compression: Compression,
    reuse: &Path,
) -> Result<Vec<Layer>> {
    let files = walk(target)?;
    let owner = owners(target);
    let mut size_of: BTreeMap<String, u64> = BTreeMap::new();
    for (rel, content, _) in &files {
        if let (Some(d), Content::File { path, .. }) = (owner.get(rel), content) {
            *size_of.entry(d.clone()).or_default() += std::fs::metadata(path).map_or(0, |m| m.len());
        }
    }
    let big: Vec<&String> = size_of
        .iter()
        .filter(|(_, s)| **s >= OWN_LAYER_BYTES)
        .map(|(d, _)| d)
        .collect();
    let mut specs: BTreeMap<Option<&String>, LayerSpec> = BTreeMap::new();
    for (rel, content, exe) in files {
        let group = owner.get(&rel).filter(|d| big.contains(d));
        let group = group.and_then(|d| big.iter().copied().find(|b| *b == d));
        specs
            .entry(group)
            .or_default()
            .add(&image_path(&rel, site), content, exe, 0);
    }
    let mut layers = Vec::new();
    for d in &big {
        if let Some(ls) = specs.get(&Some(*d)) {
            layers.push(layers::build_layer(
                ls,
                out,
                &format!("imagespec: Python package {d}"),
                mtime,
                compression,
                Some(reuse),
            )?);
        }
    }
    if let Some(ls) = specs.get(&None) {
        layers.push(layers::build_layer(
            ls,
            out,
            "imagespec: Python packages",
            mtime,
            compression,
            Some(reuse),
        )?);
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const SITE: &str = "/opt/venv/lib/python3.11/site-packages";

    /// A distribution as uv leaves it in the target folder: its files and a RECORD naming them.
    fn dist(target: &Path, name: &str, files: &[(&str, u64)]) {
        let info = format!("{name}-1.0.dist-info");
        std::fs::create_dir_all(target.join(&info)).unwrap();
        let mut record = String::new();
        for (rel, size) in files {
            let p = target.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            // Sparse: the size counts, the disk does not.
            std::fs::File::create(&p).unwrap().set_len(*size).unwrap();
            record.push_str(&format!("{rel},,\n"));
        }
        record.push_str(&format!("{info}/RECORD,,\n"));
        std::fs::write(target.join(&info).join("RECORD"), record).unwrap();
    }

    fn names_in(layer: &Layer) -> Vec<String> {
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&layer.path).unwrap())
            .read_to_end(&mut tar)
            .unwrap();
        let mut ar = tar::Archive::new(&tar[..]);
        let entries = ar.entries().unwrap();
        entries
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with('/'))
            .collect()
    }

    #[test]
    fn a_big_distribution_gets_a_layer_of_its_own_and_the_rest_share_one() {
        let d = tempfile::tempdir().unwrap();
        let (target, out) = (d.path().join("target"), d.path().join("out"));
        std::fs::create_dir(&out).unwrap();
        dist(&target, "big", &[("big/core.so", OWN_LAYER_BYTES)]);
        dist(
            &target,
            "small",
            &[("small/__init__.py", 10), ("bin/small-tool", 10)],
        );
        let made = split_packages(
            &target,
            SITE,
            &out,
            0,
            Compression::Gzip,
            &d.path().join("by-tar"),
        )
        .unwrap();
        let what: Vec<&str> = made.iter().map(|l| l.created_by.as_str()).collect();
        assert_eq!(
            what,
            ["imagespec: Python package big", "imagespec: Python packages"]
        );
        assert_eq!(
            names_in(&made[0]),
            [
                "opt/venv/lib/python3.11/site-packages/big-1.0.dist-info/RECORD",
                "opt/venv/lib/python3.11/site-packages/big/core.so",
            ]
        );
        assert_eq!(
            names_in(&made[1]),
            [
                "opt/venv/bin/small-tool",
                "opt/venv/lib/python3.11/site-packages/small-1.0.dist-info/RECORD",
                "opt/venv/lib/python3.11/site-packages/small/__init__.py",
            ]
        );
    }
}
