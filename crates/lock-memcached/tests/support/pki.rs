//! Certificates for TLS tests, made with rcgen in a temporary directory, and memcached
//! servers started with `-Z` that use them.

use std::path::PathBuf;

use memcached_testkit::{MemcachedServer, ServerBuilder};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    date_time_ymd,
};

use super::unique_key;

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        let path = std::env::temp_dir().join(unique_key("pip-locks-tls"));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a test file");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA that signs certificates.
pub(crate) struct Ca {
    pub(crate) cert: rcgen::Certificate,
    pub(crate) key: KeyPair,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Ca { cert, key }
    }

    /// A certificate for `names` (DNS names or IP addresses), for a server or a client, and
    /// its key, both PEM.
    pub(crate) fn issue(&self, names: &[&str], client: bool, expired: bool) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

/// The files of one test: the server's CA, server certificate, a client certificate and a
/// second, unrelated CA.
pub(crate) struct Pki {
    pub(crate) dir: TempDir,
    pub(crate) ca: Ca,
    pub(crate) ca_file: String,
    pub(crate) other_ca_file: String,
    pub(crate) client_crt: String,
    pub(crate) client_key: String,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let dir = TempDir::new();
        let ca = Ca::new("pip-locks test CA");
        let other = Ca::new("some other CA");
        let ca_file = dir.write("ca.pem", &ca.cert.pem());
        let other_ca_file = dir.write("other-ca.pem", &other.cert.pem());
        let (crt, key) = ca.issue(&["pip-locks client"], true, false);
        let client_crt = dir.write("client.crt", &crt);
        let client_key = dir.write("client.key", &key);
        Pki {
            dir,
            ca,
            ca_file,
            other_ca_file,
            client_crt,
            client_key,
        }
    }

    /// A memcached with TLS on its port, its certificate for `names` (expired if asked);
    /// `require_client_cert` turns on `ssl_verify_mode=2` with this CA for clients.
    pub(crate) fn server(
        &self,
        names: &[&str],
        expired: bool,
        require_client_cert: bool,
    ) -> MemcachedServer {
        self.server_with(
            MemcachedServer::builder(),
            names,
            expired,
            require_client_cert,
        )
    }

    /// [`Pki::server`] from a given builder (for example with authentication).
    pub(crate) fn server_with(
        &self,
        builder: ServerBuilder,
        names: &[&str],
        expired: bool,
        require_client_cert: bool,
    ) -> MemcachedServer {
        let (crt, key) = self.ca.issue(names, false, expired);
        let tag = unique_key("server");
        let crt = self.dir.write(&format!("{tag}.crt"), &crt);
        let key = self.dir.write(&format!("{tag}.key"), &key);
        let mut options = format!("ssl_chain_cert={crt},ssl_key={key}");
        if require_client_cert {
            options.push_str(&format!(",ssl_verify_mode=2,ssl_ca_cert={}", self.ca_file));
        }
        builder
            .plain_listener()
            .arg("-Z")
            .arg("-o")
            .arg(options)
            .start()
            .expect("memcached with TLS")
    }
}
