//! The cluster CA and the certificates it issues, as PEM files in one directory.
//!
//! Layout of a certificate directory:
//!
//! | file | content |
//! | --- | --- |
//! | `ca.crt` / `ca.key` | the cluster CA (self-signed, may only sign end-entity certificates) |
//! | `{name}.crt` / `{name}.key` | a node or client certificate issued by that CA |
//!
//! Keys are ECDSA P-256 in PKCS#8 PEM, written with mode `0600`. Every node certificate
//! carries the DNS name [`NODE_SERVER_NAME`], which is the name every node is verified
//! against, so nodes can be reached by any address. Client certificates carry
//! [`CLIENT_SAN`] instead and are valid for client authentication only, so they can
//! neither serve as a node nor pass [`crate::Connection::peer_is_node`].

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::RootCertStore;

use crate::NetError;

/// The DNS name in every node certificate; clients and nodes verify nodes against it.
pub const NODE_SERVER_NAME: &str = "ringflow-node";

/// The DNS name in every client certificate.
pub const CLIENT_SAN: &str = "ringflow-client";

/// File name of the CA certificate inside a certificate directory.
pub const CA_CERT_FILE: &str = "ca.crt";

/// File name of the CA private key inside a certificate directory.
pub const CA_KEY_FILE: &str = "ca.key";

/// Validity of the CA certificate.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Validity of node and client certificates.
const LEAF_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// Certificates are valid from a little before their creation, to tolerate clock skew.
const BACKDATE: Duration = Duration::from_secs(3600);
/// Longest accepted certificate or cluster name.
const MAX_NAME_LEN: usize = 64;

/// Paths of the files written by [`init_ca`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// `dir/ca.crt`, the CA certificate (PEM).
    pub cert: PathBuf,
    /// `dir/ca.key`, the CA private key (PEM, mode 0600).
    pub key: PathBuf,
}

/// Paths of the files written by [`issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedFiles {
    /// `dir/{name}.crt`, the issued certificate (PEM).
    pub cert: PathBuf,
    /// `dir/{name}.key`, its private key (PEM, mode 0600).
    pub key: PathBuf,
}

/// What an issued certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A cluster node (coordinator or worker): serves and connects, named [`NODE_SERVER_NAME`].
    Node,
    /// A client (CLI, application): client authentication only, named [`CLIENT_SAN`].
    Client,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Checks a certificate name: 1..=64 of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
fn validate_name(name: &str) -> Result<(), NetError> {
    let bad = |reason| NetError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("longer than 64 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("only A-Z, a-z, 0-9, '.', '_' and '-' are allowed"));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(bad("must not start with '.' or '-'"));
    }
    Ok(())
}

/// Checks a name for [`issue`]: [`validate_name`] plus names that would collide.
fn validate_leaf_name(name: &str) -> Result<(), NetError> {
    validate_name(name)?;
    let lower = name.to_ascii_lowercase();
    if lower == "ca" {
        return Err(NetError::InvalidName {
            name: name.to_owned(),
            reason: "reserved for the CA's own files",
        });
    }
    if lower == NODE_SERVER_NAME || lower == CLIENT_SAN {
        return Err(NetError::InvalidName {
            name: name.to_owned(),
            reason: "reserved: it is the role name carried by every certificate",
        });
    }
    Ok(())
}

fn validate_cluster_name(name: &str) -> Result<(), NetError> {
    let bad = |reason| NetError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.trim().is_empty() {
        return Err(bad("cluster name must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(bad("cluster name longer than 64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("cluster name must not contain control characters"));
    }
    Ok(())
}

fn dns_san(name: &str) -> Result<SanType, NetError> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*'));
    if !valid {
        return Err(NetError::InvalidName {
            name: name.to_owned(),
            reason: "not an IP address nor a DNS name",
        });
    }
    let s = Ia5String::try_from(name).map_err(|_| NetError::InvalidName {
        name: name.to_owned(),
        reason: "not an IA5 string",
    })?;
    Ok(SanType::DnsName(s))
}

/// Creates `dir` (mode 0700 on Unix) if it does not exist.
fn ensure_dir(dir: &Path) -> Result<(), NetError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| NetError::io("creating directory", dir, e))
}

/// Writes `contents` to `path` atomically (temp file + rename), with `mode` on Unix.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), NetError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut f = opts
            .open(&tmp)
            .map_err(|e| NetError::io("creating", &tmp, e))?;
        // The file may have existed with laxer permissions; enforce them.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| NetError::io("setting permissions of", &tmp, e))?;
        }
        f.write_all(contents)
            .map_err(|e| NetError::io("writing", &tmp, e))?;
        f.sync_all().map_err(|e| NetError::io("syncing", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| NetError::io("renaming into", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn read_file(path: &Path) -> Result<Vec<u8>, NetError> {
    fs::read(path).map_err(|e| NetError::io("reading", path, e))
}

fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NetError::invalid_cert(path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(NetError::invalid_cert(
            path,
            "no CERTIFICATE block found (is this a certificate file?)",
        ));
    }
    Ok(certs)
}

fn parse_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, NetError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        NetError::invalid_cert(path, format!("no usable PRIVATE KEY block found: {e}"))
    })
}

fn root_store(path: &Path, cas: &[CertificateDer<'static>]) -> Result<RootCertStore, NetError> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca.clone()).map_err(|e| {
            NetError::invalid_cert(path, format!("not a usable CA certificate: {e}"))
        })?;
    }
    Ok(roots)
}

/// Verifies that `chain` is a valid client certificate under `roots` (every issued
/// certificate, node or client, is valid for client authentication).
fn verify_chain(
    roots: &Arc<RootCertStore>,
    chain: &[CertificateDer<'static>],
) -> Result<(), String> {
    let (ee, intermediates) = chain
        .split_first()
        .ok_or_else(|| "empty certificate chain".to_owned())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| e.to_string())?;
    verifier
        .verify_client_cert(ee, intermediates, UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// True when `chain` is a node certificate under `roots`: valid for server
/// authentication and for the DNS name [`NODE_SERVER_NAME`].
pub(crate) fn chain_is_node(roots: &RootCertStore, chain: &[CertificateDer<'_>]) -> bool {
    let Some((ee, intermediates)) = chain.split_first() else {
        return false;
    };
    let Ok(parsed) = ParsedCertificate::try_from(ee) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(NODE_SERVER_NAME) else {
        return false;
    };
    rustls::client::verify_server_name(&parsed, &name).is_ok()
        && rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            roots,
            intermediates,
            UnixTime::now(),
            provider().signature_verification_algorithms.all,
        )
        .is_ok()
}

/// Creates the cluster CA in `dir`: writes `ca.crt` and `ca.key` (mode 0600).
///
/// `cluster_name` goes into the CA's subject. Creates `dir` (mode 0700) if needed.
/// Refuses with [`NetError::AlreadyExists`] if either file exists, unless `force`;
/// with `force` the old CA is replaced, which invalidates every certificate it issued.
pub fn init_ca(dir: &Path, cluster_name: &str, force: bool) -> Result<CaFiles, NetError> {
    validate_cluster_name(cluster_name)?;
    let files = CaFiles {
        cert: dir.join(CA_CERT_FILE),
        key: dir.join(CA_KEY_FILE),
    };
    if !force {
        for path in [&files.cert, &files.key] {
            if path.exists() {
                return Err(NetError::AlreadyExists { path: path.clone() });
            }
        }
    }
    ensure_dir(dir)?;

    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{cluster_name} ringflow CA"));
    dn.push(DnType::OrganizationName, "ringflow");
    dn.push(DnType::OrganizationalUnitName, cluster_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = rcgen::date_time_ymd(1970, 1, 1) + unix_now();
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;

    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;

    // Key first: a crt without its key is useless, a key without a crt is harmless.
    write_file(&files.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&files.cert, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(dir = %dir.display(), cluster = cluster_name, "created cluster CA");
    Ok(files)
}

/// Issues a certificate named `name` for `role`, signed by the CA in `dir`, and writes
/// `dir/{name}.crt` and `dir/{name}.key` (mode 0600), replacing earlier ones.
///
/// `name` must be 1..=64 of `[A-Za-z0-9._-]`, must not start with `.` or `-`, and must
/// not be `ca`, [`NODE_SERVER_NAME`] or [`CLIENT_SAN`].
///
/// A [`Role::Node`] certificate gets the DNS names [`NODE_SERVER_NAME`], `name` and
/// `localhost`, the IP addresses 127.0.0.1 and ::1, and `extra_sans` (an IP address if
/// it parses as one, else a DNS name); it is valid for server and client authentication.
/// A [`Role::Client`] certificate gets the DNS names [`CLIENT_SAN`], `name` and
/// `extra_sans`, and is valid for client authentication only.
///
/// The new certificate is verified against `ca.crt` before anything is written, so a
/// `ca.key` that does not belong to `ca.crt` is reported here.
pub fn issue(
    dir: &Path,
    name: &str,
    role: Role,
    extra_sans: &[String],
) -> Result<IssuedFiles, NetError> {
    validate_leaf_name(name)?;
    let ca_cert_path = dir.join(CA_CERT_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    let ca_pem = read_file(&ca_cert_path)?;
    let ca_key_pem = read_file(&ca_key_path)?;
    let ca_certs = parse_certs(&ca_cert_path, &ca_pem)?;
    let ca_key_str = std::str::from_utf8(&ca_key_pem)
        .map_err(|_| NetError::invalid_cert(&ca_key_path, "not a UTF-8 PEM file"))?;
    let ca_key = KeyPair::from_pem(ca_key_str)
        .map_err(|e| NetError::invalid_cert(&ca_key_path, format!("unusable CA key: {e}")))?;
    let issuer = Issuer::from_ca_cert_der(&ca_certs[0], ca_key).map_err(|e| {
        NetError::invalid_cert(&ca_cert_path, format!("unusable CA certificate: {e}"))
    })?;

    let mut dns: BTreeSet<String> = BTreeSet::new();
    let mut ips: BTreeSet<IpAddr> = BTreeSet::new();
    match role {
        Role::Node => {
            dns.extend([NODE_SERVER_NAME.to_owned(), "localhost".to_owned()]);
            ips.extend([
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        Role::Client => {
            dns.insert(CLIENT_SAN.to_owned());
        }
    }
    dns.insert(name.to_owned());
    let mut sans = Vec::new();
    for extra in extra_sans {
        let extra = extra.trim();
        match extra.parse::<IpAddr>() {
            Ok(ip) => {
                ips.insert(ip);
            }
            Err(_) => {
                if extra.eq_ignore_ascii_case(NODE_SERVER_NAME) && role == Role::Client {
                    return Err(NetError::InvalidName {
                        name: extra.to_owned(),
                        reason: "a client certificate cannot carry the node name",
                    });
                }
                dns_san(extra)?; // validate before inserting
                dns.insert(extra.to_owned());
            }
        }
    }
    for d in &dns {
        sans.push(dns_san(d)?);
    }
    sans.extend(ips.into_iter().map(SanType::IpAddress));

    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "ringflow");
    dn.push(
        DnType::OrganizationalUnitName,
        match role {
            Role::Node => "node",
            Role::Client => "client",
        },
    );
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match role {
        Role::Node => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    let now = rcgen::date_time_ymd(1970, 1, 1) + unix_now();
    params.not_before = now - BACKDATE;
    params.not_after = now + LEAF_VALIDITY;

    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;

    let roots = Arc::new(root_store(&ca_cert_path, &ca_certs)?);
    verify_chain(&roots, &[cert.der().clone()]).map_err(|e| {
        NetError::invalid_cert(
            &ca_key_path,
            format!(
                "a certificate signed with this key does not verify against {}: {e}",
                ca_cert_path.display()
            ),
        )
    })?;

    let files = IssuedFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    write_file(&files.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&files.cert, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(dir = %dir.display(), name, ?role, "issued certificate");
    Ok(files)
}

/// A loaded identity: the cluster CA, this party's certificate chain and private key.
///
/// Loading checks everything that can be checked offline: PEM syntax, that the key
/// belongs to the certificate and that the certificate was issued by the CA and is
/// currently valid. Errors name the offending file.
pub struct TlsIdentity {
    pub(crate) ca_certs: Vec<CertificateDer<'static>>,
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    is_node: bool,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            ca_certs: self.ca_certs.clone(),
            roots: self.roots.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            is_node: self.is_node,
        }
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("ca_certs", &self.ca_certs.len())
            .field("chain", &self.chain.len())
            .field("is_node", &self.is_node)
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Loads the CA certificate(s), this party's certificate chain and its private key
    /// from PEM files.
    ///
    /// `ca_cert` may hold several CA certificates (all are trusted, e.g. during a CA
    /// rotation); `cert` holds the end-entity certificate first, then any intermediates.
    pub fn load(ca_cert: &Path, cert: &Path, key: &Path) -> Result<Self, NetError> {
        let ca_certs = parse_certs(ca_cert, &read_file(ca_cert)?)?;
        let chain = parse_certs(cert, &read_file(cert)?)?;
        let key_der = parse_key(key, &read_file(key)?)?;
        let roots = Arc::new(root_store(ca_cert, &ca_certs)?);

        let signing_key = provider()
            .key_provider
            .load_private_key(key_der.clone_key())
            .map_err(|e| NetError::invalid_cert(key, format!("unsupported private key: {e}")))?;
        match rustls::sign::CertifiedKey::new(chain.clone(), signing_key).keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e) => {
                return Err(NetError::invalid_cert(
                    key,
                    format!("does not belong to {}: {e}", cert.display()),
                ))
            }
        }
        verify_chain(&roots, &chain).map_err(|e| {
            NetError::invalid_cert(
                cert,
                format!("not a valid certificate under {}: {e}", ca_cert.display()),
            )
        })?;
        let is_node = chain_is_node(&roots, &chain);
        Ok(Self {
            ca_certs,
            roots,
            chain,
            key: key_der,
            is_node,
        })
    }

    /// Loads `dir/ca.crt`, `dir/{name}.crt` and `dir/{name}.key`.
    pub fn from_dir(dir: &Path, name: &str) -> Result<Self, NetError> {
        validate_name(name)?;
        Self::load(
            &dir.join(CA_CERT_FILE),
            &dir.join(format!("{name}.crt")),
            &dir.join(format!("{name}.key")),
        )
    }

    /// True when this is a node certificate (valid for server authentication as
    /// [`NODE_SERVER_NAME`]); only node identities can [`crate::Endpoint::bind`].
    pub fn is_node(&self) -> bool {
        self.is_node
    }

    /// The trusted CA certificates, DER-encoded.
    pub fn ca_certs_der(&self) -> impl Iterator<Item = &[u8]> {
        self.ca_certs.iter().map(|c| c.as_ref())
    }

    /// This party's end-entity certificate, DER-encoded.
    pub fn cert_der(&self) -> &[u8] {
        self.chain.first().map(|c| c.as_ref()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in ["node1", "a", "w-1.eu_west", "A9"] {
            assert!(validate_leaf_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "-flag",
            "ca",
            "CA",
            "ringflow-node",
            "ringflow-client",
            "sp ace",
            "é",
        ] {
            assert!(validate_leaf_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"x".repeat(65)).is_err());
        assert!(validate_cluster_name("prod eu").is_ok());
        assert!(validate_cluster_name(" ").is_err());
        assert!(validate_cluster_name("a\nb").is_err());
    }

    #[test]
    fn extra_sans_are_validated() {
        let dir = tempfile::tempdir().expect("tempdir");
        init_ca(dir.path(), "t", false).expect("init");
        let err = issue(dir.path(), "n1", Role::Node, &["bad name!".to_owned()]);
        assert!(matches!(err, Err(NetError::InvalidName { .. })), "{err:?}");
        let err = issue(
            dir.path(),
            "c1",
            Role::Client,
            &[NODE_SERVER_NAME.to_owned()],
        );
        assert!(matches!(err, Err(NetError::InvalidName { .. })), "{err:?}");
        assert!(!dir.path().join("n1.crt").exists());
    }
}
