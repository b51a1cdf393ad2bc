//! Credentials inside URLs (`https://user:password@host/...`, `https://token@host/...`): found,
//! replaced by `***` for anything shown to people (`repr`, `to_yaml`, messages, engine logs), and
//! removed for anything hashed (the tag). The spec, the tag, the build steps and the program
//! runner all use it, so it sits below all of them and uses nothing.

/// Each URL's `user:password@` part replaced by `***@`, for anything shown to people.
pub fn redact_userinfo(s: &str) -> String {
    map_userinfo(s, |_| "***@".to_owned())
}

/// Each URL's `user:password@` part removed, for anything hashed.
pub fn strip_userinfo(s: &str) -> String {
    map_userinfo(s, |_| String::new())
}

/// Whether any URL in `s` carries a userinfo part (`user:password@`, `token@`): a credential, to
/// be kept out of everything shown, hashed or written into an image.
pub fn has_userinfo(s: &str) -> bool {
    strip_userinfo(s) != s
}

/// Whether a URL in `s` has the userinfo `***`, which [`redact_userinfo`] writes (`repr`,
/// `to_yaml`) in place of credentials: a value read back from such text, which no index accepts.
pub fn has_redacted_userinfo(s: &str) -> bool {
    let mut found = false;
    map_userinfo(s, |userinfo| {
        found |= userinfo == "***";
        String::new()
    });
    found
}

/// `s` with each URL's userinfo (without its `@`) replaced by what `replace` returns for it.
fn map_userinfo(s: &str, mut replace: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at a path, query, fragment or space, or where another URL's "://"
        // begins (URLs glued together with ',' or ';' must each lose their credentials).
        let end = tail
            .find(|c: char| "/?#".contains(c) || c.is_whitespace())
            .unwrap_or(tail.len());
        let end = end.min(tail.find("://").unwrap_or(end));
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(&replace(&authority[..at]));
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_removed_from_every_url() {
        assert_eq!(strip_userinfo("https://u:p@h/x"), "https://h/x");
        assert_eq!(
            strip_userinfo("-i https://u:p@h/x --extra https://t@g"),
            "-i https://h/x --extra https://g"
        );
        assert_eq!(
            strip_userinfo("https://h,https://u:secret@g"),
            "https://h,https://g"
        );
        assert_eq!(strip_userinfo("https://a@b;https://c:d@e"), "https://b;https://e");
        assert_eq!(redact_userinfo("https://u:p@h"), "https://***@h");
        assert_eq!(strip_userinfo("no url at all"), "no url at all");
        assert!(has_userinfo(
            "pkg @ git+https://oauth2:t@gitlab.example.com/g/p.git"
        ));
        assert!(!has_userinfo("pkg @ https://example.com/path@not-a-credential"));
        assert!(has_redacted_userinfo("pkg @ https://***@h/x.whl"));
        assert!(!has_redacted_userinfo("pkg @ https://u:p@h/x.whl"));
    }
}
