//! After a build and before its push, the image's `import imagespec` must be this project at this
//! version ([`runtime::CHECK_SCRIPT`]): a wheel for another platform, an index serving another
//! project under the name, or a package that shadows the module would otherwise reach the
//! registry under a tag that says nothing of it. The engines that keep the built image locally
//! (docker, buildah, podman) run the check in it; the native builder reads its runtime layer
//! instead. An image of a platform this machine cannot run is not checked, and the build says so.

use super::Progress;
use crate::dockerfile::VENV;
use crate::error::Result;
use crate::runtime;
use crate::spec::Spec;
use std::path::Path;

/// The image's Python, whose imagespec the check imports (every builder installs into this venv).
pub fn python() -> String {
    format!("{VENV}/bin/python")
}

/// `Ok` when this machine can run images of `platform` (its own CPU, or one qemu's binfmt handler
/// runs), else why not.
pub fn can_run(platform: &str) -> std::result::Result<(), String> {
    let host = std::env::consts::ARCH;
    let arch = runtime::wheel_arch(platform);
    if arch == host {
        return Ok(());
    }
    let handler = Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{arch}"));
    match std::fs::read_to_string(&handler) {
        Ok(text) if text.lines().next() == Some("enabled") => Ok(()),
        _ => Err(format!(
            "this {host} machine cannot run {platform} images (no enabled binfmt handler {}; \
             qemu-user-static provides one)",
            handler.display()
        )),
    }
}

/// Runs `check_image` (the engine's way: [`runtime::CHECK_SCRIPT`] run with [`python`] in the
/// image, or [`check_venv`] on its mounted files) unless the spec has no runtime or the image
/// cannot run here.
pub fn check(
    spec: &Spec,
    progress: &(dyn Fn(Progress<'_>) + Sync),
    check_image: impl FnOnce() -> Result<()>,
) -> Result<()> {
    if !runtime::wanted(spec)? {
        return Ok(());
    }
    let platform = spec.platform.split(',').next().unwrap_or_default();
    if let Err(why) = can_run(platform) {
        progress(Progress::Step(&format!(
            "the image's imagespec is not checked: {why}"
        )));
        return Ok(());
    }
    progress(Progress::Step("check: the image's imagespec"));
    check_image()
}

/// The check without running the image: the venv under `root` (a mounted image) must hold this
/// project's imagespec and no other.
pub fn check_venv(root: &Path, image: &str) -> Result<()> {
    let lib = root.join(VENV.trim_start_matches('/')).join("lib");
    let sites: Vec<_> = std::fs::read_dir(&lib)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("site-packages"))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    let [site] = sites.as_slice() else {
        return Err(crate::Error::build(format!(
            "{image}: no single Python venv at {VENV} to check the imagespec in ({} found); nothing was pushed",
            sites.len()
        )));
    };
    runtime::check_installed(site, true).map_err(|e| crate::Error::build(format!("{image}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_runs_its_own_platform() {
        let own = match std::env::consts::ARCH {
            "aarch64" => "linux/arm64",
            _ => "linux/amd64",
        };
        assert!(can_run(own).is_ok());
        let e = can_run("linux/s390x").unwrap_err();
        assert!(e.contains("qemu-s390x"), "{e}");
    }
}
