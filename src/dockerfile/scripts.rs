//! The fixed shell scripts of the `RUN` steps. No user value is ever spliced into them: values
//! arrive as positional arguments (`"$@"`, `$1`), which `sh` never re-parses.

use super::{SECRET_CA, SECRET_PIP_ARGS, SECRET_PIP_CONF, SECRET_PIP_REQS, USER_UID, VENV};

/// Where the context's `imagespec/` folder (requirements files, wheel) is mounted or copied.
pub const IMAGESPEC_DIR: &str = "/tmp/imagespec";
/// The pip cache (a BuildKit cache mount, never part of a layer).
pub const PIP_CACHE: &str = "/var/cache/imagespec/pip";

pub fn secret_path(id: &str) -> String {
    format!("/run/secrets/{id}")
}

/// Set-up shared by every script: strict mode, a private temporary folder removed on exit, and
/// with a CA bundle, that bundle (appended to the image's own store) for every tool that can take one.
fn prelude(ca: bool) -> String {
    let mut s = String::from(
        "set -eu\n\
         imagespec_tmp=$(mktemp -d)\n\
         trap 'rm -rf \"$imagespec_tmp\"' EXIT\n",
    );
    if ca {
        let secret = secret_path(SECRET_CA);
        s.push_str(&format!(
            "if [ ! -s {secret} ]; then echo 'imagespec: the build secret {SECRET_CA} (the CA bundle) was not passed to the engine' >&2; exit 1; fi\n\
             ca=\"$imagespec_tmp/ca.pem\"\n\
             for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do\n\
             \x20 if [ -f \"$f\" ]; then cat \"$f\" >> \"$ca\"; echo >> \"$ca\"; break; fi\n\
             done\n\
             cat {secret} >> \"$ca\"\n\
             export PIP_CERT=\"$ca\" SSL_CERT_FILE=\"$ca\" REQUESTS_CA_BUNDLE=\"$ca\" CURL_CA_BUNDLE=\"$ca\" \
             GIT_SSL_CAINFO=\"$ca\" CONDA_SSL_VERIFY=\"$ca\" MAMBA_SSL_VERIFY=\"$ca\" NODE_EXTRA_CA_CERTS=\"$ca\"\n"
        ));
    }
    s
}

/// apt-get install of `"$@"`.
pub fn apt(ca: bool, buildkit: bool) -> String {
    let mut s = prelude(ca);
    s.push_str(
        "if ! command -v apt-get >/dev/null 2>&1; then echo 'imagespec: apt_packages need apt-get, which the base image does not have' >&2; exit 1; fi\n\
         export DEBIAN_FRONTEND=noninteractive\n",
    );
    if ca {
        s.push_str("set -- -o \"Acquire::https::CAInfo=$ca\" \"$@\"\n");
        s.push_str("apt-get -o \"Acquire::https::CAInfo=$ca\" update\n");
    } else {
        s.push_str("apt-get update\n");
    }
    s.push_str("apt-get install -y --no-install-recommends \"$@\"\n");
    if !buildkit {
        s.push_str("apt-get clean\nrm -rf /var/lib/apt/lists/*\n");
    }
    s
}

/// conda install of `"$@"` (`-c CHANNEL`... then packages) with whichever conda the base has.
pub fn conda(ca: bool) -> String {
    let mut s = prelude(ca);
    s.push_str(
        "for m in micromamba mamba conda; do\n\
         \x20 if command -v \"$m\" >/dev/null 2>&1; then\n\
         \x20   \"$m\" install -y -n base \"$@\"\n\
         \x20   \"$m\" clean -a -y\n\
         \x20   exit 0\n\
         \x20 fi\n\
         done\n\
         echo 'imagespec: conda_packages need micromamba, mamba or conda on the PATH of the base image, and it has none; use a base_image that has one' >&2\n\
         exit 1\n",
    );
    s
}

/// The non-root user: uid 1000, reused when the base already has it.
pub fn user() -> String {
    format!(
        "set -eu\n\
         if grep -q '^[^:]*:[^:]*:{USER_UID}:' /etc/passwd; then :\n\
         elif command -v useradd >/dev/null 2>&1; then useradd --create-home --uid {USER_UID} --shell /bin/sh imagespec\n\
         elif command -v adduser >/dev/null 2>&1; then adduser -D -u {USER_UID} imagespec\n\
         else echo 'imagespec: cannot create the user {USER_UID}: the base image has neither useradd nor adduser' >&2; exit 1\n\
         fi\n\
         mkdir -p /root /home\n\
         chown {USER_UID} /root /home\n"
    )
}

/// The virtualenv: `$1` the Python version the spec requires ("" for any), `$2` python_exec ("").
pub fn venv() -> String {
    format!(
        "set -eu\n\
         want=$1\n\
         py=$2\n\
         if [ ! -x {VENV}/bin/python ]; then\n\
         \x20 if [ -z \"$py\" ]; then py=$(command -v python3 || command -v python || true); fi\n\
         \x20 if [ -z \"$py\" ] || [ ! -x \"$py\" ]; then echo \"imagespec: no Python interpreter in the base image (${{2:-python3 or python on PATH}}); add python3 to apt_packages or set python_exec\" >&2; exit 1; fi\n\
         \x20 \"$py\" -m venv --system-site-packages {VENV} 2>/dev/null || \"$py\" -m venv --clear --without-pip --system-site-packages {VENV}\n\
         fi\n\
         if ! {VENV}/bin/python -m pip --version >/dev/null 2>&1; then echo \"imagespec: the base image's Python has no pip and cannot make one; add python3-venv or python3-pip to apt_packages\" >&2; exit 1; fi\n\
         have=$({VENV}/bin/python -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])')\n\
         if [ -n \"$want\" ]; then\n\
         \x20 case \"$have\" in \"$want\" | \"$want\".*) ;;\n\
         \x20 *) echo \"imagespec: the base image's Python is $have but the spec's python_version is $want; change one of them\" >&2; exit 1 ;;\n\
         \x20 esac\n\
         fi\n"
    )
}

/// What every pip step needs: `$1` index URL, `$2` extra index URLs (each "" when unset or
/// secret), then pip's arguments; the secret config and arguments when they exist.
#[derive(Clone, Copy, Debug)]
pub struct PipEnv {
    pub ca: bool,
    pub buildkit: bool,
    pub conf_secret: bool,
    pub args_secret: bool,
    /// Requirements with URL credentials (the main install only).
    pub reqs_secret: bool,
    /// The spec's `constraints`, written to [`CONSTRAINTS`] in the context, bound this install.
    pub constraints: bool,
}

/// Where the spec's `constraints` are, one per line.
pub const CONSTRAINTS: &str = "/tmp/imagespec/constraints.txt";

fn pip_prelude(env: PipEnv) -> String {
    let mut s = prelude(env.ca);
    s.push_str(
        "if [ -n \"$1\" ]; then export PIP_INDEX_URL=\"$1\"; fi\n\
         if [ -n \"$2\" ]; then export PIP_EXTRA_INDEX_URL=\"$2\"; fi\n\
         shift 2\n\
         export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore\n",
    );
    if env.buildkit {
        s.push_str(&format!("export PIP_CACHE_DIR={PIP_CACHE}\n"));
    } else {
        s.push_str("export PIP_NO_CACHE_DIR=1\n");
    }
    if env.conf_secret {
        s.push_str(&format!(
            "export PIP_CONFIG_FILE={}\n",
            secret_path(SECRET_PIP_CONF)
        ));
    }
    if env.args_secret {
        s.push_str(&append_lines_of(SECRET_PIP_ARGS));
    }
    if env.constraints {
        s.push_str(&format!("export PIP_CONSTRAINT={CONSTRAINTS}\n"));
    }
    s
}

/// Each line of the secret `id` appended to `"$@"` as one argument.
fn append_lines_of(id: &str) -> String {
    format!(
        "while IFS= read -r a || [ -n \"$a\" ]; do set -- \"$@\" \"$a\"; done < {}\n",
        secret_path(id)
    )
}

/// pip install of `"$@"` into the virtualenv.
pub fn pip_install(env: PipEnv, cleanup: bool) -> String {
    let mut s = pip_prelude(env);
    if env.reqs_secret {
        s.push_str(&append_lines_of(SECRET_PIP_REQS));
    }
    s.push_str(&format!("{VENV}/bin/python -m pip install \"$@\"\n"));
    if cleanup {
        s.push_str(&format!("rm -rf {IMAGESPEC_DIR}\n"));
    }
    s
}

/// A lock file exported to pinned, hashed requirements by its own tool (installed from the index
/// into the temporary folder, never into the image), then pip install of them plus `"$@"`.
pub fn pip_lock(env: PipEnv, uv: bool) -> String {
    let mut s = pip_prelude(env);
    // The spec's constraints bind the image's packages, not the tools that read the lock.
    let tools = if env.constraints { "PIP_CONSTRAINT= " } else { "" };
    let py = format!("{VENV}/bin/python");
    let dir = format!("{IMAGESPEC_DIR}/requirements");
    if uv {
        s.push_str(&format!(
            "{tools}{py} -m pip install --quiet --target \"$imagespec_tmp/tools\" 'uv>=0.5,<1'\n\
             cd {dir}\n\
             UV_CACHE_DIR=\"$imagespec_tmp/uv-cache\" UV_PYTHON={py} UV_PYTHON_DOWNLOADS=never \
             \"$imagespec_tmp/tools/bin/uv\" export --frozen --no-dev --no-emit-project --format requirements-txt \
             --output-file \"$imagespec_tmp/requirements.txt\"\n"
        ));
    } else {
        s.push_str(&format!(
            "{tools}{py} -m pip install --quiet --target \"$imagespec_tmp/tools\" 'poetry>=2,<3' 'poetry-plugin-export>=1.8,<2'\n\
             cd {dir}\n\
             PYTHONPATH=\"$imagespec_tmp/tools\" POETRY_CACHE_DIR=\"$imagespec_tmp/poetry-cache\" \
             {py} -m poetry export --no-interaction --only main --format requirements.txt \
             --output \"$imagespec_tmp/requirements.txt\"\n"
        ));
    }
    s.push_str(&format!(
        "cd /\n{py} -m pip install -r \"$imagespec_tmp/requirements.txt\" \"$@\"\n"
    ));
    s
}

/// A project's locked dependencies (uv or poetry, the tool installed into the temporary folder,
/// never into the image), from the project's folder `dir`: the pinned, hashed requirements in one
/// pip install with `"$@"`, then the local packages the lock names (workspace members, path
/// dependencies, and with `install_project` the project itself) without their dependencies,
/// which the lock has already given. pip cannot check hashes of folders, hence two installs.
pub fn pip_project(env: PipEnv, uv: bool, dir: &str, install_project: bool) -> String {
    let mut s = pip_prelude(env);
    let py = format!("{VENV}/bin/python");
    let tmp = "\"$imagespec_tmp\"";
    if uv {
        let project = if install_project { "" } else { " --no-emit-project" };
        s.push_str(&format!(
            "PIP_CONSTRAINT= {py} -m pip install --quiet --target {tmp}/tools 'uv>=0.8,<1'\n\
             cd {dir}\n\
             export UV_CACHE_DIR={tmp}/uv-cache UV_PYTHON={py} UV_PYTHON_DOWNLOADS=never UV_NO_CONFIG=1\n\
             {tmp}/tools/bin/uv export --quiet --frozen --no-dev --no-emit-local{project} --format requirements-txt \
             --output-file {tmp}/locked.txt\n\
             {tmp}/tools/bin/uv export --quiet --frozen --no-dev --no-editable --no-hashes --no-header --no-annotate{project} \
             --format requirements-txt --output-file {tmp}/all.txt\n\
             grep -E '^(\\.|/|file:)' {tmp}/all.txt > {tmp}/local.txt || true\n"
        ));
    } else {
        s.push_str(&format!(
            "PIP_CONSTRAINT= {py} -m pip install --quiet --target {tmp}/tools 'poetry>=2,<3' 'poetry-plugin-export>=1.8,<2'\n\
             cd {dir}\n\
             PYTHONPATH={tmp}/tools POETRY_CACHE_DIR={tmp}/poetry-cache {py} -m poetry export --no-interaction \
             --only main --format requirements.txt --output {tmp}/all.txt\n\
             grep -v ' @ file://' {tmp}/all.txt > {tmp}/locked.txt || true\n\
             grep ' @ file://' {tmp}/all.txt > {tmp}/local.txt || true\n"
        ));
        if install_project {
            s.push_str(&format!("echo . >> {tmp}/local.txt\n"));
        }
    }
    s.push_str(&format!(
        "{py} -m pip install -r {tmp}/locked.txt \"$@\"\n\
         if [ -s {tmp}/local.txt ]; then {py} -m pip install --no-deps -r {tmp}/local.txt \"$@\"; fi\n\
         cd /\n"
    ));
    s
}

/// `overrides`, after everything else: `$1` is how many there are, then each as its package's
/// name and the requirement, then pip's arguments. pip has no `--override`, so an override is
/// installed over what the resolution chose, and only when its package is in the image, as uv's
/// `--override` only replaces requirements that something asks for.
pub fn pip_override(env: PipEnv) -> String {
    let mut s = pip_prelude(env);
    let py = format!("{VENV}/bin/python");
    s.push_str(&format!(
        "n=$1\n\
         shift\n\
         found=0\n\
         while [ \"$n\" -gt 0 ]; do\n\
         \x20 if {py} -c 'import importlib.metadata as m, sys; m.distribution(sys.argv[1])' \"$1\" 2>/dev/null; then\n\
         \x20   set -- \"$@\" \"$2\"\n\
         \x20   found=$((found + 1))\n\
         \x20 fi\n\
         \x20 shift 2\n\
         \x20 n=$((n - 1))\n\
         done\n\
         if [ \"$found\" -gt 0 ]; then {py} -m pip install \"$@\"; fi\n"
    ));
    s
}

/// A user command (`$1`) run by `sh -c` with the CA bundle set up for it.
pub fn command_with_ca() -> String {
    let mut s = prelude(true);
    s.push_str("/bin/sh -c \"$1\"\n");
    s
}
