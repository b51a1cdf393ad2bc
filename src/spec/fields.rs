//! The names of the spec's fields, shared by the Python and YAML front doors.

/// Every key the constructor and YAML files accept, in the order of flytekit's ImageSpec dataclass
/// (flytekit/image_spec/image_spec.py:84-112 at v1.16.24), which is also the order of positional arguments.
pub const FIELDS: &[&str] = &[
    "name",
    "python_version",
    "builder",
    "source_root",
    "env",
    "registry",
    "packages",
    "conda_packages",
    "conda_channels",
    "requirements",
    "apt_packages",
    "cuda",
    "cudnn",
    "base_image",
    "platform",
    "pip_index",
    "pip_extra_index_url",
    "pip_secret_mounts",
    "pip_extra_args",
    "registry_config",
    "entrypoint",
    "commands",
    "tag_format",
    "source_copy_mode",
    "copy",
    "python_exec",
    "runtime_packages",
    "builder_options",
    "builder_config",
    // imagespec's own, after flytekit's (docs/projects.md).
    "project",
    "project_install_mode",
    "overrides",
    "constraints",
];

/// The message for a key that is not a field: the closest field, then the valid ones.
pub fn suggest_field(unknown: &str) -> String {
    format!("unknown field '{unknown}'. {}", field_hint(unknown))
}

/// "Did you mean 'packages'? Valid fields: ..." for a key that is not a field.
pub fn field_hint(unknown: &str) -> String {
    let best = FIELDS
        .iter()
        .map(|f| (edit_distance(unknown, f), *f))
        .min()
        .filter(|(d, f)| *d <= (f.len().max(unknown.len()) / 3).max(2));
    let hint = best
        .map(|(_, f)| format!("Did you mean '{f}'? "))
        .unwrap_or_default();
    format!("{hint}Valid fields: {}", FIELDS.join(", "))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_field() {
        assert!(suggest_field("pakages").contains("Did you mean 'packages'?"));
        assert!(suggest_field("envs").contains("Did you mean 'env'?"));
        assert!(!suggest_field("zzzzzzzzzzzz").contains("Did you mean"));
    }
}
