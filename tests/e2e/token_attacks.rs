//! Token attacks, one test each: every attack token is crafted here and
//! presented to identity-service (`POST /identity/verify`), which asks Core
//! to verify it; the answer must be a 401 JSON error naming the reason.
//!
//! Forgeries that need the host's own signing key (wrong audience or issuer,
//! not yet valid, expired) read it from `keys.db` in the test's data
//! directory, and each first proves the forging itself is right: the same
//! token with only the attacked claim left alone is accepted. So the 401
//! shows the claim check at work, not a broken signature.
//!
//! Also here: no secret or token reaches a log, an error or the audit log,
//! and failed API key attempts are throttled per client address.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use hms_host::cli::client::JsonResponse;
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// A host running identity-service, an API key and a token exchanged for it.
struct Setup {
    host: Host,
    api_key: String,
    token: String,
}

fn setup() -> Setup {
    setup_on(Host::start(&[component("identity")]))
}

fn setup_on(host: Host) -> Setup {
    let api_key = new_key(&host, "citizen-portal");
    let r = token_for(&host, &api_key);
    assert_eq!(r.status, 200, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    let ok = present(&host, &token);
    assert_eq!(
        ok.status, 200,
        "the genuine token is accepted: {:?}",
        ok.body
    );
    Setup {
        host,
        api_key,
        token,
    }
}

/// Presents `token` to identity-service.
fn present(host: &Host, token: &str) -> JsonResponse {
    verify_with(host, Some(&format!("Bearer {token}")))
}

/// Asserts a 401 JSON error whose message contains `reason`.
#[track_caller]
fn assert_rejected(what: &str, r: &JsonResponse, reason: &str) {
    assert_eq!(r.status, 401, "{what}: {:?}", r.body);
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{what}"
    );
    assert_eq!(r.body["code"], "unauthorized", "{what}: {:?}", r.body);
    let message = r.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(reason),
        "{what}: expected {reason:?} in {message:?}"
    );
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A JWT's header and payload as JSON, and its signature segment.
fn split(token: &str) -> (Value, Value, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let json = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (json(parts[0]), json(parts[1]), parts[2].to_string())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `kid` and public key (`x`, base64url) the host publishes.
fn published_key(host: &Host) -> (String, String) {
    let jwks = block_on(host.client().call(Method::GET, "/_hms/auth/jwks", None)).unwrap();
    let key = &jwks["keys"][0];
    (
        key["kid"].as_str().unwrap().to_string(),
        key["x"].as_str().unwrap().to_string(),
    )
}

/// The host's active signing key, read from `keys.db` in its data directory
/// (PKCS#8 DER, as the host stores it), checked against the published kid.
fn host_signing_key(host: &Host) -> (String, EncodingKey) {
    let db = rusqlite::Connection::open_with_flags(
        host.data_dir.join("keys.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (kid, der): (String, Vec<u8>) = db
        .query_row(
            "SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kid, published_key(host).0);
    (kid, EncodingKey::from_ed_der(&der))
}

/// Signs `claims` as EdDSA under `kid`.
fn sign(kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A fresh Ed25519 key that this host has never seen.
fn stranger_key() -> (SigningKey, EncodingKey) {
    let key = SigningKey::from_bytes(&rand::random());
    let der = key.to_pkcs8_der().unwrap();
    let encoding = EncodingKey::from_ed_der(der.as_bytes());
    (key, encoding)
}

/// Valid claims as the host issues them, with a fresh `jti` so that the host
/// cannot have a verification of the token cached.
fn fresh_claims(genuine: &str) -> Value {
    let (_, mut claims, _) = split(genuine);
    claims["jti"] = format!("forged-{}", hex::encode(rand::random::<[u8; 8]>())).into();
    claims
}

/// Replaces one character of the `part`-th dot-separated segment of a JWT.
fn tamper(token: &str, part: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let seg = &mut parts[part];
    let mid = seg.len() / 2;
    let c = if &seg[mid..mid + 1] == "A" { "B" } else { "A" };
    seg.replace_range(mid..mid + 1, c);
    parts.join(".")
}

/// Proves the forging is right: `claims`, signed with the host's real key,
/// are accepted. Then the attack's change must be what is rejected.
#[track_caller]
fn assert_forgery_works(host: &Host, kid: &str, key: &EncodingKey, claims: &Value) {
    let control = sign(kid, key, claims);
    let r = present(host, &control);
    assert_eq!(
        r.status, 200,
        "the control forgery is accepted: {:?}",
        r.body
    );
}

#[test]
fn alg_none_is_rejected() {
    let s = setup();
    let (kid, _) = published_key(&s.host);
    let (_, claims, signature) = split(&s.token);
    let payload = b64json(&claims);
    let cases = [
        ("alg none", json!({"alg": "none"}), String::new()),
        (
            "alg none with the real kid",
            json!({"alg": "none", "typ": "JWT", "kid": kid}),
            String::new(),
        ),
        (
            "alg none keeping the real signature",
            json!({"alg": "none", "kid": kid}),
            signature,
        ),
        (
            "alg None",
            json!({"alg": "None", "kid": kid}),
            String::new(),
        ),
    ];
    for (what, header, sig) in cases {
        let token = format!("{}.{payload}.{sig}", b64json(&header));
        assert_rejected(what, &present(&s.host, &token), "invalid token");
    }
}

#[test]
fn algorithm_confusion_hs256_keyed_with_the_public_key_is_rejected() {
    let s = setup();
    let (kid, x) = published_key(&s.host);
    let raw = URL_SAFE_NO_PAD.decode(&x).unwrap();
    let claims = fresh_claims(&s.token);
    // The public key as an attacker might feed it to HMAC: raw bytes, or
    // the base64url text from the JWKS.
    for (secret_kind, secret) in [("raw key", raw.as_slice()), ("JWKS x", x.as_bytes())] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some(kid.clone());
            let token =
                jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
            let what = format!("{alg:?} keyed with the {secret_kind}");
            assert_rejected(
                &what,
                &present(&s.host, &token),
                "invalid token: algorithm not accepted",
            );
        }
    }
}

#[test]
fn unknown_kid_is_rejected() {
    let s = setup();
    let claims = fresh_claims(&s.token);
    let (stranger, encoding) = stranger_key();
    // A well-formed kid: the RFC 7638 thumbprint of the stranger's key.
    let x = URL_SAFE_NO_PAD.encode(stranger.verifying_key().to_bytes());
    let thumb = sha256_b64(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
    let token = sign(&thumb, &encoding, &claims);
    assert_rejected(
        "stranger's key under its own kid",
        &present(&s.host, &token),
        "invalid token: unknown signing key",
    );

    // A genuine token of another host (its kid is unknown here).
    let other = Host::start(&[component("identity")]);
    let foreign = token_for(&other, &new_key(&other, "citizen-portal")).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_rejected(
        "another host's token",
        &present(&s.host, &foreign),
        "invalid token: unknown signing key",
    );

    // No kid at all.
    let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &encoding).unwrap();
    assert_rejected(
        "no kid",
        &present(&s.host, &token),
        "invalid token: missing kid",
    );
}

fn sha256_b64(text: &str) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(text.as_bytes()))
}

#[test]
fn right_kid_but_a_different_key_is_rejected() {
    let s = setup();
    let (kid, _) = published_key(&s.host);
    let (_, encoding) = stranger_key();
    let token = sign(&kid, &encoding, &fresh_claims(&s.token));
    assert_rejected(
        "stranger's key under the host's kid",
        &present(&s.host, &token),
        "invalid token: bad signature",
    );
}

#[test]
fn expired_tokens_are_rejected() {
    let s = setup_on(Host::start_with(
        &[component("identity")],
        &temp_dir("short-ttl"),
        &["--token-ttl-secs", "2"],
    ));
    // Forged with the host's key, only `exp` in the past (fast, exact).
    let (kid, key) = host_signing_key(&s.host);
    let mut claims = fresh_claims(&s.token);
    let t = now();
    claims["exp"] = (t + 60).into();
    assert_forgery_works(&s.host, &kid, &key, &claims);
    claims["jti"] = "expired-forgery".into();
    claims["iat"] = (t - 120).into();
    claims["nbf"] = (t - 120).into();
    claims["exp"] = (t - 60).into();
    let token = sign(&kid, &key, &claims);
    assert_rejected("exp in the past", &present(&s.host, &token), "expired");

    // A genuine 2-second token, after its lifetime (including one that the
    // host has cached as verified).
    std::thread::sleep(Duration::from_millis(EXPIRY_WAIT_MS));
    assert_rejected(
        "genuine token after its lifetime",
        &present(&s.host, &s.token),
        "expired",
    );
}

/// Token lifetime (2 s, so that a fresh token surely verifies at once; expiry
/// has no leeway) plus a margin for whole-second timestamps.
const EXPIRY_WAIT_MS: u64 = 3200;

#[test]
fn not_yet_valid_tokens_are_rejected() {
    let s = setup();
    let (kid, key) = host_signing_key(&s.host);
    let mut claims = fresh_claims(&s.token);
    assert_forgery_works(&s.host, &kid, &key, &claims);
    // Far beyond the host's few seconds of leeway for `nbf`.
    let t = now();
    claims["jti"] = "premature-forgery".into();
    claims["nbf"] = (t + 3600).into();
    claims["exp"] = (t + 7200).into();
    let token = sign(&kid, &key, &claims);
    assert_rejected(
        "nbf an hour ahead",
        &present(&s.host, &token),
        "invalid token: not yet valid",
    );
}

#[test]
fn wrong_audience_is_rejected() {
    let s = setup();
    let (kid, key) = host_signing_key(&s.host);
    let mut claims = fresh_claims(&s.token);
    assert_forgery_works(&s.host, &kid, &key, &claims);
    claims["aud"] = "some-other-system".into();
    let token = sign(&kid, &key, &claims);
    assert_rejected(
        "aud some-other-system",
        &present(&s.host, &token),
        "invalid token: wrong audience",
    );
}

#[test]
fn wrong_issuer_is_rejected() {
    let s = setup();
    let (kid, key) = host_signing_key(&s.host);
    let mut claims = fresh_claims(&s.token);
    assert_forgery_works(&s.host, &kid, &key, &claims);
    claims["iss"] = "evil-host".into();
    let token = sign(&kid, &key, &claims);
    assert_rejected(
        "iss evil-host",
        &present(&s.host, &token),
        "invalid token: wrong issuer",
    );
}

#[test]
fn tokens_of_a_revoked_key_are_rejected() {
    let s = setup();
    // A second key, created and revoked over the admin API.
    let created = block_on(s.host.admin().call(
        Method::POST,
        "/_hms/keys",
        Some(&json!({"service": "citizen-portal"})),
    ))
    .unwrap();
    let (id, api_key) = (
        created["id"].as_str().unwrap(),
        created["api_key"].as_str().unwrap(),
    );
    let r = token_for(&s.host, api_key);
    assert_eq!(r.status, 200, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        present(&s.host, &token).status,
        200,
        "valid before revoking"
    );

    block_on(
        s.host
            .admin()
            .call(Method::DELETE, &format!("/_hms/keys/{id}"), None),
    )
    .unwrap();
    assert_rejected(
        "token of a revoked key",
        &present(&s.host, &token),
        "revoked",
    );
    let r = token_for(&s.host, api_key);
    assert_eq!(r.status, 401, "{:?}", r.body);
    assert_eq!(r.body["message"], "API key revoked");
    // Other keys of the same service are unaffected.
    assert_eq!(present(&s.host, &s.token).status, 200);
}

#[test]
fn tampered_payloads_are_rejected() {
    let s = setup();
    let parts: Vec<&str> = s.token.split('.').collect();
    let (_, claims, _) = split(&s.token);
    let with = |field: &str, value: Value| {
        let mut c = claims.clone();
        c[field] = value;
        format!("{}.{}.{}", parts[0], b64json(&c), parts[2])
    };
    let cases = [
        ("subject changed", with("sub", "report-service".into())),
        (
            "posing as a workload token",
            with("key_id", "workload".into()),
        ),
        ("lifetime extended", with("exp", (now() + 86_400).into())),
        ("one character flipped", tamper(&s.token, 1)),
    ];
    for (what, token) in cases {
        assert_rejected(what, &present(&s.host, &token), "invalid token");
    }
    // Where the payload still decodes, the signature check is what fails.
    assert_rejected(
        "subject changed",
        &present(&s.host, &with("sub", "report-service".into())),
        "invalid token: bad signature",
    );
}

#[test]
fn tampered_signatures_are_rejected() {
    let s = setup();
    let parts: Vec<&str> = s.token.split('.').collect();
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let with_sig =
        |sig: &[u8]| format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    let other = token_for(&s.host, &s.api_key).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let other_sig = other.rsplit('.').next().unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    let bit_flipped = with_sig(&sig);
    sig[last] ^= 1;
    let cases = [
        (
            "one character flipped",
            tamper(&s.token, 2),
            "bad signature",
        ),
        ("one bit flipped", bit_flipped, "bad signature"),
        (
            "another token's signature",
            format!("{}.{}.{other_sig}", parts[0], parts[1]),
            "bad signature",
        ),
        ("truncated", with_sig(&sig[..32]), "invalid token"),
        (
            "empty",
            format!("{}.{}.", parts[0], parts[1]),
            "invalid token",
        ),
    ];
    for (what, token, reason) in cases {
        assert_rejected(what, &present(&s.host, &token), reason);
    }
    assert_eq!(present(&s.host, &other).status, 200, "the donor is valid");
}

/// Every secret and token of a session, with attacks and normal use, is
/// looked for in the audit log (CLI and API), the host's own output at trace
/// level, every file of its data directory, and the error answers.
#[test]
fn no_secret_or_token_reaches_a_log_an_error_or_the_audit_log() {
    let data_dir = temp_dir("secrets");
    let output = temp_dir("secrets-output").join("host");
    let host = Host::start_capturing(
        &seed_components(),
        &data_dir,
        "hms_host=trace,debug,wasmtime_internal_cranelift=info",
        &output,
    );
    let admin = std::fs::read_to_string(data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let mut secrets: Vec<String> = vec![admin.clone()];
    let mut answers: Vec<Value> = Vec::new();

    // Normal use: a key, its token, identity directly and through report.
    let key = new_key(&host, "citizen-portal");
    let r = token_for(&host, &key);
    let token = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(present(&host, &token).status, 200);
    assert_eq!(
        host.post("/reports/identity-check", &json!({"id": "C20002"}))
            .status,
        200
    );
    secrets.extend([key.clone(), token.clone()]);

    // A revoked key and its token.
    let revoked = new_key(&host, "citizen-portal");
    let revoked_token = token_for(&host, &revoked).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let id = revoked.split('_').nth(1).unwrap();
    assert!(host.cli(&["keys", "revoke", id]).status.success());
    answers.push(token_for(&host, &revoked).body);
    answers.push(present(&host, &revoked_token).body);
    secrets.extend([revoked.clone(), revoked_token.clone()]);

    // Wrong keys, including one whose id is real; a key in a bad body.
    let key_id = key.split('_').nth(1).unwrap();
    let wrong = format!("hms_{key_id}_{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
    answers.push(token_for(&host, &wrong).body);
    for body in [
        format!(r#"{{"api_key": ["{key}"]}}"#),
        format!(r#"{{"api_key": "{key}", }}"#),
        format!(r#"{{"key": "{key}"}}"#),
    ] {
        let r = block_on(host.client().send_bytes(
            Method::POST,
            "/_hms/auth/token",
            body.into(),
            &[("content-type", "application/json")],
        ))
        .unwrap();
        assert_eq!(r.status, 400, "{:?}", r.body);
        answers.push(r.body);
    }
    secrets.push(wrong);

    // Attack tokens at identity, and the admin token where it does not belong.
    let (kid, _) = published_key(&host);
    let (_, encoding) = stranger_key();
    let forged = [
        tamper(&token, 1),
        tamper(&token, 2),
        sign(&kid, &encoding, &fresh_claims(&token)),
        format!(
            "{}.{}.",
            b64json(&json!({"alg": "none", "kid": kid})),
            token.split('.').nth(1).unwrap()
        ),
        admin.clone(),
    ];
    for t in &forged {
        let r = present(&host, t);
        assert_eq!(r.status, 401);
        answers.push(r.body);
    }
    let r = block_on(
        host.client()
            .with_bearer(&token)
            .send(Method::GET, "/_hms/keys", None, &[]),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    answers.push(r.body);
    secrets.extend(forged);

    // What to look for: each secret whole, and its random part alone (the
    // secret of an API key, the signature of a token).
    let mut needles: Vec<String> = Vec::new();
    for s in &secrets {
        needles.push(s.clone());
        let random = if let Some(rest) = s.strip_prefix("hmsadmin_") {
            Some(rest)
        } else if s.starts_with("hms_") {
            s.splitn(3, '_').nth(2)
        } else {
            s.split('.').nth(2)
        };
        if let Some(random) = random.filter(|r| r.len() >= 16) {
            needles.push(random.to_string());
        }
    }
    // The raw secret bytes, for binary files.
    let raw: Vec<Vec<u8>> = [&key, &revoked]
        .iter()
        .map(|k| {
            URL_SAFE_NO_PAD
                .decode(k.splitn(3, '_').nth(2).unwrap())
                .unwrap()
        })
        .collect();

    for answer in &answers {
        let text = answer.to_string();
        assert!(answer["code"].is_string(), "a JSON error: {text}");
        assert_clean("an error answer", &text, &needles);
    }

    // The audit log, through the CLI and the events API.
    let out = host.cli(&["logs", "--json"]);
    assert!(out.status.success());
    let cli_log = String::from_utf8(out.stdout).unwrap();
    assert!(cli_log.contains("Verified ID C20002"), "{cli_log}");
    assert_clean("logs --json", &cli_log, &needles);
    let events = Value::from(host.events("limit=1000")).to_string();
    assert_clean("the events API", &events, &needles);

    // The host's own output, then every file it keeps.
    drop(host);
    std::thread::sleep(Duration::from_millis(200));
    for ext in ["stdout", "stderr"] {
        let text = std::fs::read_to_string(output.with_extension(ext)).unwrap();
        assert_clean(&format!("host {ext}"), &text, &needles);
        if ext == "stderr" {
            assert!(
                text.contains("DEBUG") || text.contains("TRACE"),
                "stderr should hold the debug log, got {} bytes",
                text.len()
            );
        }
    }
    // (Not the compiled-code cache: machine code the host made from the
    // components, large and of no interest here.)
    let mut files = Vec::new();
    walk(&data_dir, &mut files);
    files.retain(|f| !f.starts_with(data_dir.join("cache")));
    assert!(files.iter().any(|f| f.ends_with("audit.db")), "{files:?}");
    for file in files {
        if file.ends_with("admin.token") {
            continue; // where the admin credential lives, by design
        }
        let bytes = std::fs::read(&file).unwrap();
        let what = file.display().to_string();
        for needle in needles
            .iter()
            .map(|n| n.as_bytes())
            .chain(raw.iter().map(Vec::as_slice))
        {
            assert!(
                !contains(&bytes, needle),
                "{what} holds a secret or token ({} bytes of it)",
                needle.len()
            );
        }
    }
}

/// Asserts `text` holds no needle, and nothing shaped like a JWT or an admin
/// token (which catches workload tokens, whose values the test never sees).
#[track_caller]
fn assert_clean(what: &str, text: &str, needles: &[String]) {
    for needle in needles {
        assert!(
            !text.contains(needle.as_str()),
            "{what} holds a secret or token: …{}…",
            &needle[..8.min(needle.len())]
        );
    }
    // `eyJ` is base64 of `{"`, the start of every JWT.
    assert!(!text.contains("eyJ"), "{what} holds something like a JWT");
    assert!(!text.contains("hmsadmin_"), "{what} holds an admin token");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// API keys are stored as HMAC-SHA256 under the pepper in `keys.db`, not in
/// the clear and not as a plain hash.
#[test]
fn api_keys_are_stored_only_as_keyed_hashes() {
    use hmac::Mac;
    use sha2::Digest;
    let host = Host::start(&[component("identity")]);
    let key = new_key(&host, "citizen-portal");
    let (id, secret) = key["hms_".len()..].split_once('_').unwrap();
    let secret = URL_SAFE_NO_PAD.decode(secret).unwrap();
    let db = rusqlite::Connection::open_with_flags(
        host.data_dir.join("keys.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let stored: Vec<u8> = db
        .query_row(
            "SELECT secret_hash FROM api_keys WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    let pepper: Vec<u8> = db
        .query_row("SELECT value FROM meta WHERE name = 'pepper'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&pepper).unwrap();
    mac.update(&secret);
    assert_eq!(stored, mac.finalize().into_bytes().to_vec());
    assert_ne!(stored, sha2::Sha256::digest(&secret).to_vec());
    assert!(!contains(&stored, &secret));
}

// --- Throttling of the token endpoint -------------------------------------

type RawClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// A client whose connections come from `source` (any 127/8 address works
/// on Linux loopback), so that one test can act as several clients.
fn client_from(source: &str) -> RawClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(source.parse::<IpAddr>().unwrap()));
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

/// `POST /_hms/auth/token` with a raw body through `client`.
async fn exchange(client: &RawClient, host: &Host, body: String) -> Answer {
    let req = http::Request::post(format!("{}/_hms/auth/token", host.url()))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    Answer {
        status,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap(),
    }
}

fn key_body(api_key: &str) -> String {
    json!({ "api_key": api_key }).to_string()
}

/// Burst of failed attempts the host allows per address.
const BURST: usize = 10;

#[test]
fn failed_token_requests_are_throttled_per_address() {
    let host = Host::start(&[component("identity")]);
    let key = new_key(&host, "citizen-portal");
    let id = key.split('_').nth(1).unwrap();
    let revoked = new_key(&host, "citizen-portal");
    assert!(
        host.cli(&["keys", "revoke", revoked.split('_').nth(1).unwrap()])
            .status
            .success()
    );
    let attacker = client_from("127.0.0.1");
    let legit = client_from("127.0.0.2");
    block_on(async {
        // Every kind of failure counts: wrong secret, unknown id, garbage,
        // a revoked key, an unreadable body.
        let wrong = format!("hms_{id}_{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
        let unknown = format!("hms_0123456789ab_{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
        let failures = [
            (key_body(&wrong), 401),
            (key_body(&unknown), 401),
            (key_body("hms_nonsense"), 401),
            (key_body(&revoked), 401),
            ("{\"api_key\": ".to_string(), 400),
        ];
        for (body, status) in failures.iter().cycle().take(BURST) {
            let a = exchange(&attacker, &host, body.clone()).await;
            assert_eq!(a.status, *status, "within the burst: {:?}", a.body);
            assert_eq!(a.retry_after, None);
        }
        // Budget spent (allowing for a little refill while the burst ran).
        let mut throttled = None;
        for _ in 0..3 {
            let a = exchange(&attacker, &host, key_body(&wrong)).await;
            if a.status == StatusCode::TOO_MANY_REQUESTS {
                throttled = Some(a);
                break;
            }
            assert_eq!(a.status, 401);
        }
        let a = throttled.expect("the attacker's address is throttled after the burst");
        assert_eq!(a.body["code"], "too_many_requests", "{:?}", a.body);
        assert!(a.body["message"].is_string());
        let retry_after = a.retry_after.expect("a Retry-After header");
        assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");

        // Every request from that address is refused now, the valid key too.
        let a = exchange(&attacker, &host, key_body(&key)).await;
        assert_eq!(a.status, 429, "{:?}", a.body);
        assert!(a.retry_after.is_some_and(|s| s >= 1));

        // The legitimate client at another address is not locked out, and
        // has its own budget.
        let l = exchange(&legit, &host, key_body(&key)).await;
        assert_eq!(l.status, 200, "{:?}", l.body);
        assert!(l.body["token"].is_string());
        let l = exchange(&legit, &host, key_body(&wrong)).await;
        assert_eq!(l.status, 401, "{:?}", l.body);

        // After Retry-After, the attacker's address may try again.
        tokio::time::sleep(Duration::from_secs(retry_after)).await;
        let a = exchange(&attacker, &host, key_body(&key)).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    });
}

#[test]
fn successful_token_requests_are_never_throttled() {
    let host = Host::start(&[component("identity")]);
    let key = new_key(&host, "citizen-portal");
    let client = client_from("127.0.0.1");
    block_on(async {
        // Some failures, short of the burst, do not change that.
        for _ in 0..BURST - 1 {
            let a = exchange(&client, &host, key_body("hms_nonsense")).await;
            assert_eq!(a.status, 401);
        }
        for i in 0..10 * BURST {
            let a = exchange(&client, &host, key_body(&key)).await;
            assert_eq!(a.status, 200, "exchange {i}: {:?}", a.body);
            assert_eq!(a.retry_after, None);
        }
    });
}
