//! Cluster CA and certificate files.

mod common;

use std::fs;

use common::{cluster, identity};
use ringflow_net::{certs, NetError, Role, TlsIdentity};

#[test]
fn init_issue_load_roundtrip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = certs::init_ca(dir.path(), "test cluster", false).expect("init_ca");
    assert_eq!(ca.cert, dir.path().join("ca.crt"));
    assert_eq!(ca.key, dir.path().join("ca.key"));
    let pem = fs::read_to_string(&ca.cert).expect("read ca.crt");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));

    let node = certs::issue(dir.path(), "n1", Role::Node, &["192.168.1.9".into()]).expect("node");
    assert_eq!(node.cert, dir.path().join("n1.crt"));
    assert_eq!(node.key, dir.path().join("n1.key"));
    let client = certs::issue(dir.path(), "cli", Role::Client, &[]).expect("client");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [&ca.key, &node.key, &client.key] {
            let mode = fs::metadata(key).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
    }

    let n = TlsIdentity::load(&ca.cert, &node.cert, &node.key).expect("load node");
    assert!(n.is_node());
    let c = TlsIdentity::from_dir(dir.path(), "cli").expect("load client");
    assert!(!c.is_node());
    assert!(!c.cert_der().is_empty());
    assert_eq!(c.ca_certs_der().count(), 1);

    // Re-issuing replaces the files and still loads.
    certs::issue(dir.path(), "n1", Role::Node, &[]).expect("reissue");
    assert!(identity(dir.path(), "n1").is_node());
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs::init_ca(dir.path(), "one", false).expect("first init");
    let before = fs::read(dir.path().join("ca.crt")).expect("read");
    match certs::init_ca(dir.path(), "two", false) {
        Err(NetError::AlreadyExists { path }) => assert!(path.ends_with("ca.crt")),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(fs::read(dir.path().join("ca.crt")).expect("read"), before);

    certs::init_ca(dir.path(), "two", true).expect("forced init");
    assert_ne!(fs::read(dir.path().join("ca.crt")).expect("read"), before);
}

#[test]
fn init_creates_missing_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("a/b/certs");
    certs::init_ca(&nested, "x", false).expect("init");
    assert!(nested.join("ca.key").exists());
}

#[test]
fn bad_names_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs::init_ca(dir.path(), "x", false).expect("init");
    for bad in ["", "../evil", "a/b", "ca", "ringflow-node", "has space"] {
        assert!(
            matches!(
                certs::issue(dir.path(), bad, Role::Node, &[]),
                Err(NetError::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(certs::init_ca(dir.path(), "", true).is_err());
}

#[test]
fn issue_without_ca_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = certs::issue(dir.path(), "n1", Role::Node, &[]).expect_err("no CA");
    assert!(err.to_string().contains("ca.crt"), "{err}");
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster(dir.path(), "a");
    let other = tempfile::tempdir().expect("tempdir");
    cluster(other.path(), "b");
    let p = |d: &tempfile::TempDir, f: &str| d.path().join(f);

    // Missing file.
    let err = TlsIdentity::from_dir(dir.path(), "nope").expect_err("missing");
    assert!(matches!(err, NetError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.crt"), "{err}");

    // A key file where a certificate is expected.
    let err = TlsIdentity::load(&p(&dir, "ca.crt"), &p(&dir, "n1.key"), &p(&dir, "n1.key"))
        .expect_err("key as cert");
    assert!(
        matches!(err, NetError::InvalidCert { ref path, .. } if path.ends_with("n1.key")),
        "{err:?}"
    );

    // Garbage PEM.
    fs::write(p(&dir, "junk.crt"), "not pem at all").expect("write");
    let err = TlsIdentity::load(&p(&dir, "junk.crt"), &p(&dir, "n1.crt"), &p(&dir, "n1.key"))
        .expect_err("junk CA");
    assert!(err.to_string().contains("junk.crt"), "{err}");

    // Key of another certificate.
    let err = TlsIdentity::load(&p(&dir, "ca.crt"), &p(&dir, "n1.crt"), &p(&dir, "n2.key"))
        .expect_err("wrong key");
    assert!(
        matches!(err, NetError::InvalidCert { ref path, .. } if path.ends_with("n2.key")),
        "{err:?}"
    );

    // Certificate issued by another CA.
    let err = TlsIdentity::load(
        &p(&dir, "ca.crt"),
        &p(&other, "n1.crt"),
        &p(&other, "n1.key"),
    )
    .expect_err("foreign cert");
    assert!(
        matches!(err, NetError::InvalidCert { ref path, .. } if path == &p(&other, "n1.crt")),
        "{err:?}"
    );

    // ca.key that does not belong to ca.crt: issue refuses before writing anything.
    fs::copy(p(&other, "ca.key"), p(&dir, "ca.key")).expect("copy");
    let err = certs::issue(dir.path(), "n3", Role::Node, &[]).expect_err("mismatched CA key");
    assert!(err.to_string().contains("ca.key"), "{err}");
    assert!(!p(&dir, "n3.crt").exists());
}
