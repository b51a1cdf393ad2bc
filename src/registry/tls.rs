//! The TLS configuration of the registry client: the system roots plus the certificates named by
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`, verified by rustls' WebPKI verifier. Built once per value
//! of those variables (reading the roots costs milliseconds).

/// The values of `SSL_CERT_FILE` and `SSL_CERT_DIR` a configuration was built for.
type RootsKey = (Option<std::ffi::OsString>, Option<std::ffi::OsString>);

/// The TLS client config: the roots are read on the first TLS handshake ([`LazyRoots`]), not
/// here, so a process that only speaks plain HTTP to a loopback registry, or answers from its
/// cache, never reads the certificate store (hundreds of files where `SSL_CERT_DIR` is set). A
/// named `SSL_CERT_FILE` that holds no certificate is still an error here, at once.
pub(super) fn tls_config() -> Result<rustls::ClientConfig, String> {
    static CONFIGS: std::sync::Mutex<Vec<(RootsKey, rustls::ClientConfig)>> =
        std::sync::Mutex::new(Vec::new());
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let key: RootsKey = (var("SSL_CERT_FILE"), var("SSL_CERT_DIR"));
    let mut configs = CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = configs.iter().find(|(k, _)| *k == key) {
        return Ok(c.clone());
    }
    check_cert_file(&key.0)?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = std::sync::Arc::new(LazyRoots {
        key: key.clone(),
        provider: provider.clone(),
        inner: std::sync::OnceLock::new(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    configs.push((key, config.clone()));
    Ok(config)
}

/// rustls' own WebPKI verification, over the platform's roots plus `SSL_CERT_FILE`/`SSL_CERT_DIR`,
/// built on first use and kept for the process.
#[derive(Debug)]
struct LazyRoots {
    key: RootsKey,
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
    inner: std::sync::OnceLock<Result<std::sync::Arc<rustls::client::WebPkiServerVerifier>, String>>,
}

impl LazyRoots {
    fn verifier(&self) -> Result<&std::sync::Arc<rustls::client::WebPkiServerVerifier>, rustls::Error> {
        self.inner
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                // Honours SSL_CERT_FILE/SSL_CERT_DIR, in place of the platform's bundle.
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                roots.add_parsable_certificates(extra_roots(&self.key.0, &self.key.1)?);
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    std::sync::Arc::new(roots),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| format!("cannot set up TLS: {e}"))
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl rustls::client::danger::ServerCertVerifier for LazyRoots {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verifier()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A named `SSL_CERT_FILE` must exist and hold a PEM certificate (a marker check: the certificates
/// themselves are parsed at the first handshake).
fn check_cert_file(file: &Option<std::ffi::OsString>) -> Result<(), String> {
    let Some(f) = file else { return Ok(()) };
    let path = std::path::Path::new(f);
    let bytes = std::fs::read(path).map_err(|e| format!("SSL_CERT_FILE {}: {e}", path.display()))?;
    let marker = b"-----BEGIN CERTIFICATE-----";
    if bytes.windows(marker.len()).any(|w| w == marker) {
        Ok(())
    } else {
        Err(format!(
            "SSL_CERT_FILE {} holds no PEM certificate",
            path.display()
        ))
    }
}

/// When `SSL_CERT_FILE` or `SSL_CERT_DIR` is set the platform loader reads only those, so the
/// system bundle is added back here, with the named certificates themselves.
fn extra_roots(
    file: &Option<std::ffi::OsString>,
    dir: &Option<std::ffi::OsString>,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut files = Vec::new();
    if let Some(f) = file {
        files.push((std::path::PathBuf::from(f), true));
    }
    if let Some(d) = dir {
        for d in std::env::split_paths(d) {
            if let Ok(rd) = std::fs::read_dir(&d) {
                for entry in rd.flatten() {
                    files.push((entry.path(), false));
                }
            }
        }
    }
    if file.is_some() || dir.is_some() {
        for sys in [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ] {
            if std::path::Path::new(sys).is_file() {
                files.push((sys.into(), false));
                break;
            }
        }
    }
    let mut out = Vec::new();
    for (path, required) in files {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if required => return Err(format!("SSL_CERT_FILE {}: {e}", path.display())),
            Err(_) => continue,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() && required {
            return Err(format!(
                "SSL_CERT_FILE {} holds no PEM certificate",
                path.display()
            ));
        }
        out.extend(certs);
    }
    Ok(out)
}
