//! Credentials: configuration forms, credential stores through references and a container,
//! secrets kept out of every text, bad input.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use commons::{
    CREDENTIAL_STORE_FACTORY_DESCRIPTOR, ConfigParams, Configurable, Container, Context,
    CredentialParams, CredentialResolver, CredentialStore, DefaultCredentialStoreFactory,
    Descriptor, Error, ErrorKind, FactoryRegistry, MEMORY_CREDENTIAL_STORE_DESCRIPTOR,
    MemoryCredentialStore, Openable, Referenceable, References, Result, codes, component,
};
use serde_json::json;

const SECRET: &str = "s3cret-Value";

fn config(text: &str) -> ConfigParams {
    ConfigParams::from_string(text)
}

fn resolver(text: &str) -> CredentialResolver {
    CredentialResolver::from_config(&config(text)).unwrap()
}

fn with_store(refs: &References, name: &str, text: &str) -> Arc<MemoryCredentialStore> {
    let store = Arc::new(MemoryCredentialStore::from_config(&config(text)).unwrap());
    refs.put(
        Descriptor::new("pip-services", "credential-store", "memory", name, "1.0"),
        component!(store.clone() => dyn CredentialStore),
    );
    store
}

fn usernames(list: &[CredentialParams]) -> Vec<&str> {
    list.iter().map(|c| c.username().unwrap_or("-")).collect()
}

/// Every formatted form of `text` must leave `SECRET` out.
fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the secret: {text}");
}

fn assert_error_has_no_secret(err: &Error) {
    assert_no_secret("Display", &err.to_string());
    assert_no_secret("Debug", &format!("{err:?}"));
    assert_no_secret("message", err.message());
    for (k, v) in err.details() {
        assert_no_secret(k, v);
    }
}

// ---------------------------------------------------------------------------------------
// Configuration forms
// ---------------------------------------------------------------------------------------

#[test]
fn credential_section_is_one_credential_with_typed_getters() {
    let all = CredentialParams::many_from_config(&config(
        "credential.username=alice;credential.password=pw;credential.ssl_crt_file=/c.pem;\
         credential.ssl_key_file=/k.pem;credential.ssl_ca_file=/ca.pem;credential.realm=x;\
         connection.host=h",
    ))
    .unwrap();
    assert_eq!(all.len(), 1);
    let c = &all[0];
    assert_eq!(c.username(), Some("alice"));
    assert_eq!(c.password(), Some("pw"));
    assert_eq!(c.ssl_crt_file(), Some("/c.pem"));
    assert_eq!(c.ssl_key_file(), Some("/k.pem"));
    assert_eq!(c.ssl_ca_file(), Some("/ca.pem"));
    assert_eq!(c.get("realm"), Some("x"));
    assert_eq!(c.get("host"), None, "only the credential section is read");
    assert_eq!(
        (c.access_id(), c.access_key(), c.store_key()),
        (None, None, None)
    );
}

#[test]
fn credentials_sections_win_over_credential_and_keep_json_array_order() {
    let names: Vec<serde_json::Value> = (0..11)
        .map(|i| json!({"username": format!("u{i}")}))
        .collect();
    let c = ConfigParams::from_json(&json!({
        "credential": {"username": "ignored"},
        "credentials": names,
    }))
    .unwrap();
    let all = CredentialParams::many_from_config(&c).unwrap();
    let expected: Vec<String> = (0..11).map(|i| format!("u{i}")).collect();
    assert_eq!(usernames(&all), expected);
}

#[test]
fn a_credentials_entry_may_use_the_string_form() {
    let c = ConfigParams::from_tuples([
        ("credentials.a", "ignored: the section wins"),
        ("credentials.a.username", "first"),
        ("credentials.b", "username=second;password=pw"),
    ]);
    let all = CredentialParams::many_from_config(&c).unwrap();
    assert_eq!(all[1].password(), Some("pw"));
    assert_eq!(usernames(&all), ["first", "second"]);
}

#[test]
fn top_level_keys_are_one_credential_when_there_is_no_section() {
    let all = CredentialParams::many_from_config(&config(
        "host=h;username=bob;password=pw;ssl_ca_file=/ca.pem;options.timeout=5",
    ))
    .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].username(), Some("bob"));
    assert_eq!(all[0].ssl_ca_file(), Some("/ca.pem"));
    assert_eq!(all[0].get("host"), None, "only credential keys are taken");
    assert_eq!(all[0].as_config().len(), 3);

    let top_ignored =
        CredentialParams::many_from_config(&config("username=top;credential.username=section"))
            .unwrap();
    assert_eq!(usernames(&top_ignored), ["section"]);
}

#[test]
fn access_id_and_key_fall_back_to_client_id_and_key() {
    let c = CredentialParams::from_tuples([("client_id", "svc"), ("client_key", "k")]);
    assert_eq!(c.access_id(), Some("svc"));
    assert_eq!(c.access_key(), Some("k"));
    c.validate().unwrap();
    let both = CredentialParams::from_tuples([
        ("client_id", "old"),
        ("access_id", "new"),
        ("access_key", "k"),
    ]);
    assert_eq!(both.access_id(), Some("new"));
}

#[test]
fn setters_from_tuples_and_first_from_config_agree() {
    let mut built = CredentialParams::new();
    assert!(built.is_empty());
    built.set_username("alice");
    built.set_password("pw");
    built.set_access_id("id");
    built.set_access_key("key");
    built.set_ssl_crt_file("/c");
    built.set_ssl_key_file("/k");
    built.set_ssl_ca_file("/ca");
    built.set("realm", "r");
    let tuples = CredentialParams::from_tuples([
        ("username", "alice"),
        ("password", "pw"),
        ("access_id", "id"),
        ("access_key", "key"),
        ("ssl_crt_file", "/c"),
        ("ssl_key_file", "/k"),
        ("ssl_ca_file", "/ca"),
        ("realm", "r"),
    ]);
    assert_eq!(built, tuples);
    let mut section = ConfigParams::new();
    section.add_section("credential", tuples.as_config());
    assert_eq!(
        CredentialParams::first_from_config(&section).unwrap(),
        Some(tuples)
    );
    assert_eq!(
        CredentialParams::first_from_config(&ConfigParams::new()).unwrap(),
        None
    );

    let mut stored = CredentialParams::new();
    stored.set_store_key("cache");
    assert!(stored.uses_store());
    assert_eq!(stored.store_key(), Some("cache"));
}

// ---------------------------------------------------------------------------------------
// Resolving
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn no_credential_is_none_not_an_error() {
    let r = resolver("connection.host=h;options.timeout=5");
    assert!(r.get_all().is_empty());
    assert_eq!(r.lookup(&Context::new()).await.unwrap(), None);
    assert!(r.lookup_all(&Context::new()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_credential_without_store_key_is_returned_as_configured() {
    let r = resolver("credential.username=alice;credential.password=pw");
    let c = r.lookup(&Context::new()).await.unwrap().unwrap();
    assert_eq!(&c, &r.get_all()[0]);
    assert_eq!(c.password(), Some("pw"));
}

#[tokio::test]
async fn store_key_is_looked_up_in_the_references_and_laid_over_the_configured_keys() {
    let refs = References::new();
    with_store(
        &refs,
        "main",
        "cache.username=alice;cache.password=pw;cache.ssl_ca_file=/stored-ca.pem",
    );
    let mut r = resolver(
        "credential.store_key=cache;credential.ssl_ca_file=/configured-ca.pem;credential.ssl_crt_file=/c.pem",
    );
    r.set_references(&refs);
    let c = r.lookup(&Context::new()).await.unwrap().unwrap();
    assert_eq!(c.username(), Some("alice"));
    assert_eq!(c.password(), Some("pw"));
    assert_eq!(c.ssl_ca_file(), Some("/stored-ca.pem"), "stored keys win");
    assert_eq!(
        c.ssl_crt_file(),
        Some("/c.pem"),
        "configured keys are the base"
    );
    assert_eq!(c.store_key(), None);
    assert_eq!(c.get("store_key"), None);
    assert!(!c.uses_store());
}

#[tokio::test]
async fn the_first_store_that_has_the_key_wins_newest_registration_first() {
    let refs = References::new();
    with_store(
        &refs,
        "old",
        "cache.username=from-old;other.username=only-old",
    );
    with_store(&refs, "new", "cache.username=from-new");
    with_store(&refs, "empty", "");
    let mut r = resolver(
        "credentials.a.store_key=cache;credentials.b.store_key=other;credentials.c.username=inline",
    );
    r.set_references(&refs);
    let all = r.lookup_all(&Context::new()).await.unwrap();
    assert_eq!(usernames(&all), ["from-new", "only-old", "inline"]);
    assert_eq!(
        r.lookup(&Context::new()).await.unwrap().unwrap().username(),
        Some("from-new"),
        "lookup returns the first configured credential"
    );
}

#[tokio::test]
async fn a_store_key_without_any_credential_store_is_a_reference_error() {
    let refs = References::new();
    // A store registered under another type is not a credential store.
    refs.put(
        Descriptor::new("pip-services", "discovery", "memory", "default", "1.0"),
        component!(Arc::new(MemoryCredentialStore::new()) => dyn CredentialStore),
    );
    let mut r = resolver("credential.store_key=cache");
    r.set_references(&refs);
    let err = r
        .lookup(&Context::with_trace_id("boot"))
        .await
        .expect_err("no store registered");
    assert_eq!(err.kind(), ErrorKind::Reference);
    assert_eq!(err.code(), codes::REF_ERROR);
    assert_eq!(err.detail("store_key"), Some("cache"));
    assert_eq!(err.detail("locator"), Some("*:credential-store:*:*:1.0"));
    assert_eq!(err.trace_id(), Some("boot"));
    assert!(err.message().contains("'cache'"), "{err}");
    assert!(err.message().contains("no credential store"), "{err}");
}

#[tokio::test]
async fn a_store_key_no_store_has_is_a_reference_error_naming_it() {
    let refs = References::new();
    with_store(
        &refs,
        "a",
        &format!("other.username=u;other.password={SECRET}"),
    );
    with_store(&refs, "b", "");
    let mut r = resolver("credential.store_key=cache");
    r.set_references(&refs);
    let err = r
        .lookup_all(&Context::with_trace_id("t-1"))
        .await
        .expect_err("no store has the key");
    assert_eq!(err.kind(), ErrorKind::Reference);
    assert_eq!(err.code(), codes::REF_ERROR);
    assert_eq!(err.detail("store_key"), Some("cache"));
    assert_eq!(err.detail("stores"), Some("2"));
    assert_eq!(err.trace_id(), Some("t-1"));
    assert!(
        err.message()
            .contains("no credential store has the store_key 'cache'"),
        "{err}"
    );
    assert_error_has_no_secret(&err);
}

/// A store that fails every lookup.
struct BrokenStore;

#[async_trait]
impl CredentialStore for BrokenStore {
    async fn store(&self, _: &Context, _: &str, _: Option<CredentialParams>) -> Result<()> {
        Ok(())
    }
    async fn lookup(&self, _: &Context, _: &str) -> Result<Option<CredentialParams>> {
        Err(Error::new(
            ErrorKind::Connection,
            codes::CONNECTION_FAILED,
            "vault unreachable",
        ))
    }
}

#[tokio::test]
async fn a_store_error_is_returned_as_it_is() {
    let refs = References::new();
    refs.put(
        Descriptor::new("test", "credential-store", "vault", "default", "1.0"),
        component!(Arc::new(BrokenStore) => dyn CredentialStore),
    );
    let mut r = resolver("credential.store_key=cache");
    r.set_references(&refs);
    let err = r.lookup(&Context::new()).await.unwrap_err();
    assert_eq!(err.code(), codes::CONNECTION_FAILED);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn memory_store_configure_replaces_and_store_none_removes() {
    let ctx = Context::new();
    let store = MemoryCredentialStore::from_config(&ConfigParams::from_tuples([
        ("a.username", "ua"),
        ("b", "username=ub;password=pb"),
    ]))
    .unwrap();
    assert_eq!(store.keys(), ["a", "b"]);
    assert_eq!(
        store.lookup(&ctx, "b").await.unwrap().unwrap().password(),
        Some("pb")
    );
    store
        .store(
            &ctx,
            "c",
            Some(CredentialParams::from_tuples([("username", "uc")])),
        )
        .await
        .unwrap();
    store.store(&ctx, "a", None).await.unwrap();
    assert_eq!(store.keys(), ["b", "c"]);
    store.configure(&config("d.username=ud")).unwrap();
    assert_eq!(store.keys(), ["d"], "configure replaces every entry");
}

// ---------------------------------------------------------------------------------------
// Container
// ---------------------------------------------------------------------------------------

/// A component that resolves its credential when it opens, as a lock would.
#[derive(Default)]
struct Client {
    resolver: Mutex<CredentialResolver>,
    resolved: Mutex<Option<CredentialParams>>,
}

impl Configurable for Client {
    fn configure(&self, config: &ConfigParams) -> Result<()> {
        *self.resolver.lock().unwrap() = CredentialResolver::from_config(config)?;
        Ok(())
    }
}

impl Referenceable for Client {
    fn set_references(&self, references: &References) -> Result<()> {
        self.resolver.lock().unwrap().set_references(references);
        Ok(())
    }
}

#[async_trait]
impl Openable for Client {
    fn is_open(&self) -> bool {
        self.resolved.lock().unwrap().is_some()
    }
    async fn open(&self, ctx: &Context) -> Result<()> {
        let resolver = self.resolver.lock().unwrap().clone();
        let credential = resolver.lookup(ctx).await?.unwrap_or_default();
        *self.resolved.lock().unwrap() = Some(credential);
        Ok(())
    }
    async fn close(&self, _: &Context) -> Result<()> {
        *self.resolved.lock().unwrap() = None;
        Ok(())
    }
}

fn client_container(document: serde_json::Value) -> Container {
    let mut factory = FactoryRegistry::new("test");
    factory.register(Descriptor::new("test", "client", "*", "*", "1.0"), |_| {
        Ok(component!(Arc::new(Client::default())
            => dyn Configurable, dyn Referenceable, dyn Openable))
    });
    let mut container = Container::new();
    container.add_factory(Arc::new(factory));
    container.read_config(&document).unwrap();
    container
}

#[tokio::test]
async fn a_container_document_configures_the_memory_store_and_a_component_resolves_from_it() {
    let container = client_container(json!({"components": [
        {"descriptor": "pip-services:credential-store:memory:default:1.0",
         "cache": {"username": "alice", "password": SECRET}},
        {"descriptor": "test:client:default:main:1.0",
         "credential": {"store_key": "cache", "ssl_ca_file": "/ca.pem"}}
    ]}));
    let ctx = Context::with_trace_id("boot");
    container.open(&ctx).await.unwrap();
    let client: Arc<Client> = container
        .references()
        .get_one_required(&Descriptor::new("test", "client", "*", "*", "*"))
        .unwrap();
    let credential = client.resolved.lock().unwrap().clone().unwrap();
    assert_eq!(credential.username(), Some("alice"));
    assert_eq!(credential.password(), Some(SECRET));
    assert_eq!(credential.ssl_ca_file(), Some("/ca.pem"));

    let store: Arc<dyn CredentialStore> = container
        .references()
        .get_one_required(&MEMORY_CREDENTIAL_STORE_DESCRIPTOR.parse().unwrap())
        .unwrap();
    assert!(store.lookup(&ctx, "cache").await.unwrap().is_some());
    container.close(&ctx).await.unwrap();
    assert!(container.references().is_empty());
}

#[tokio::test]
async fn a_container_without_the_stored_key_fails_open_with_ref_error_and_no_secret() {
    let container = client_container(json!([
        {"descriptor": "pip-services:credential-store:memory:default:1.0",
         "other": {"username": "alice", "password": SECRET}},
        {"descriptor": "test:client:default:main:1.0", "credential": {"store_key": "cache"}}
    ]));
    let err = container
        .open(&Context::with_trace_id("boot"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::REF_ERROR);
    assert_eq!(err.detail("store_key"), Some("cache"));
    assert_eq!(
        err.detail("descriptor"),
        Some("test:client:default:main:1.0")
    );
    assert_error_has_no_secret(&err);
    assert!(!container.is_open());
    assert!(container.references().is_empty());
}

#[tokio::test]
async fn a_bad_store_configuration_fails_open_with_bad_config_and_no_secret() {
    let container = client_container(json!([
        {"descriptor": "pip-services:credential-store:memory:default:1.0",
         "cache": {"password": SECRET}}
    ]));
    let err = container.open(&Context::new()).await.unwrap_err();
    assert_eq!(err.code(), codes::BAD_CONFIG);
    assert_eq!(err.detail("key"), Some("cache.password"));
    assert_eq!(
        err.detail("descriptor"),
        Some("pip-services:credential-store:memory:default:1.0")
    );
    assert_error_has_no_secret(&err);
}

#[tokio::test]
async fn the_container_knows_the_memory_credential_store_by_default() {
    let mut container = Container::new();
    container
        .read_config_str(r#"[{"descriptor": "nobody:lock:none:default:1.0"}]"#)
        .unwrap();
    let err = container.open(&Context::new()).await.unwrap_err();
    assert_eq!(err.code(), codes::CANNOT_CREATE);
    let known = err.detail("known").unwrap();
    assert!(
        known.contains(MEMORY_CREDENTIAL_STORE_DESCRIPTOR),
        "{known}"
    );
    assert!(
        known.contains("pip-services:discovery:memory:*:1.0"),
        "{known}"
    );
    assert_eq!(
        CREDENTIAL_STORE_FACTORY_DESCRIPTOR,
        DefaultCredentialStoreFactory::descriptor().to_string()
    );
}

// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn secrets_never_appear_in_debug_or_display() {
    let secret_keys = [
        "password",
        "access_key",
        "client_key",
        "secret_key",
        "client_secret",
        "api_token",
        "ssl_key_file",
        "db_passwd",
        "pwd",
        "pass",
        "Admin_Password",
    ];
    let mut c = CredentialParams::new();
    c.set_username("alice");
    c.set_access_id("svc");
    c.set_store_key("cache");
    c.set_ssl_ca_file("/ca.pem");
    for k in secret_keys {
        c.set(k, SECRET);
    }
    let shown = [
        ("Display", c.to_string()),
        ("Debug", format!("{c:?}")),
        ("Debug alternate", format!("{c:#?}")),
    ];
    for (what, text) in &shown {
        assert_no_secret(what, text);
        for k in secret_keys {
            assert!(text.contains(k), "{what} names the key {k}: {text}");
        }
        for visible in ["alice", "svc", "cache", "/ca.pem"] {
            assert!(text.contains(visible), "{what} shows {visible}: {text}");
        }
    }
    assert!(c.to_string().contains("password=***"), "{c}");
    assert!(c.to_string().contains("store_key=cache"), "{c}");

    // The containers of credentials mask them too.
    let store = MemoryCredentialStore::new();
    store
        .store(&Context::new(), "cache", Some(c.clone()))
        .await
        .unwrap();
    assert_no_secret("store Debug", &format!("{store:?}"));
    let mut r = CredentialResolver::new();
    r.add(c.clone()).unwrap();
    assert_no_secret("resolver Debug", &format!("{r:?}"));
    let resolved = r.lookup_all(&Context::new()).await;
    assert_no_secret("lookup_all Debug", &format!("{resolved:?}"));
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

/// (configuration, key the error must name)
fn bad_rows() -> Vec<(String, &'static str)> {
    vec![
        (
            format!("credential.password={SECRET}"),
            "credential.password",
        ),
        (
            format!("credential.username=;credential.password={SECRET}"),
            "credential.username",
        ),
        (
            format!("credential.username=  ;credential.password={SECRET}"),
            "credential.username",
        ),
        (
            format!("credential.store_key=;credential.password={SECRET}"),
            "credential.store_key",
        ),
        (
            format!("credential.access_key={SECRET}"),
            "credential.access_key",
        ),
        (
            format!("credential.client_key={SECRET}"),
            "credential.client_key",
        ),
        (
            format!("credentials.ok.username=u;credentials.main.password={SECRET}"),
            "credentials.main.password",
        ),
        (format!("password={SECRET}"), "password"),
        (format!("username=;password={SECRET}"), "username"),
    ]
}

#[test]
fn bad_credentials_are_bad_config_naming_the_key_never_the_secret_and_change_nothing() {
    for (text, key) in bad_rows() {
        let mut r = resolver("credential.username=kept");
        let err = r.configure(&config(&text)).expect_err(&text);
        assert_eq!(err.kind(), ErrorKind::Config, "{text}: {err}");
        assert_eq!(err.code(), codes::BAD_CONFIG, "{text}: {err}");
        assert_eq!(err.detail("key"), Some(key), "{text}: {err}");
        assert!(err.to_string().contains(key), "{text}: {err}");
        assert_error_has_no_secret(&err);
        assert_eq!(usernames(r.get_all()), ["kept"], "{text}: nothing added");

        let err = CredentialParams::many_from_config(&config(&text)).expect_err(&text);
        assert_eq!(err.detail("key"), Some(key), "{text}");
    }
}

#[test]
fn a_bad_store_configuration_changes_nothing() {
    let store = MemoryCredentialStore::from_config(&config("a.username=ua")).unwrap();
    for (text, key) in [
        (format!("a.username=u;b.password={SECRET}"), "b.password"),
        ("b.username=".to_string(), "b.username"),
    ] {
        let err = store.configure(&config(&text)).expect_err(&text);
        assert_eq!(err.code(), codes::BAD_CONFIG, "{text}");
        assert_eq!(err.detail("key"), Some(key), "{text}: {err}");
        assert_error_has_no_secret(&err);
        assert_eq!(store.keys(), ["a"], "{text}: the table is unchanged");
    }
}

#[tokio::test]
async fn storing_or_adding_a_bad_credential_is_refused_without_the_secret() {
    let bad = CredentialParams::from_tuples([("password", SECRET)]);
    let store = MemoryCredentialStore::new();
    let err = store
        .store(&Context::with_trace_id("t"), "cache", Some(bad.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::BAD_CONFIG);
    assert_eq!(err.detail("key"), Some("cache.password"));
    assert_eq!(err.trace_id(), Some("t"));
    assert_error_has_no_secret(&err);
    assert!(store.keys().is_empty());

    let mut r = CredentialResolver::new();
    let err = r.add(bad).unwrap_err();
    assert_eq!(err.detail("key"), Some("password"));
    assert_error_has_no_secret(&err);
    assert!(r.get_all().is_empty());
}

#[test]
fn a_bad_credential_in_the_string_form_names_its_full_key() {
    let c = ConfigParams::from_tuples([("credentials.1", format!("password={SECRET}"))]);
    let err = CredentialResolver::from_config(&c).unwrap_err();
    assert_eq!(err.code(), codes::BAD_CONFIG);
    assert_eq!(err.detail("key"), Some("credentials.1.password"));
    assert_error_has_no_secret(&err);

    let store = MemoryCredentialStore::new();
    let c = ConfigParams::from_tuples([("b", format!("access_key={SECRET}"))]);
    let err = store.configure(&c).unwrap_err();
    assert_eq!(err.detail("key"), Some("b.access_key"));
    assert_error_has_no_secret(&err);
    assert!(store.keys().is_empty());
}

#[test]
fn a_password_in_a_connection_uri_stays_out_of_errors_and_debug() {
    for uri in [
        format!("memcached://alice:{SECRET}@h:99999"),
        format!("memcached://alice:{SECRET}@h/path"),
        format!("memcached://alice:pa/{SECRET}@h"),
        format!("memcached://alice:pa?{SECRET}@h:0"),
        format!("memcached://h?password={SECRET}&port=1"),
        format!("memcached://h?pass%77ord={SECRET}&host=x"),
        format!("memcached://h?access_key={SECRET}#frag"),
    ] {
        let mut c = ConfigParams::new();
        c.set("connection.uri", &uri);
        assert_no_secret("ConfigParams Debug", &format!("{c:?}"));
        let err = commons::ConnectionResolver::from_config(&c).expect_err(&uri);
        assert_eq!(err.code(), codes::BAD_CONFIG, "{uri}");
        assert_eq!(err.detail("key"), Some("connection.uri"), "{uri}");
        assert_error_has_no_secret(&err);
        assert!(err.to_string().contains("memcached://"), "{err}");
    }
    // Without user info or secret query pairs the uri is shown as it is.
    let mut c = ConfigParams::new();
    c.set("connection.uri", "memcached://h:99999?timeout=5");
    let err = commons::ConnectionResolver::from_config(&c).unwrap_err();
    assert_eq!(err.detail("value"), Some("memcached://h:99999?timeout=5"));
    assert!(format!("{c:?}").contains("memcached://h:99999?timeout=5"));
}
