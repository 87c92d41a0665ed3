//! Sharing presets through the public API: bundles, access codes, passwords, limits, revocation and
//! the rate limit on failed redemptions.

mod common;

use std::time::Duration;

use comfy_store::{
    AuditOutcome, AuditQuery, Redemption, SHARE_AUDIT_TOOL, SavePreset, ShareRequest, Store, StoreError,
    StoreOptions,
};
use serde_json::{Value, json};

fn graph(seed: i64) -> Value {
    json!({"3": {"class_type": "KSampler", "inputs": {"seed": seed}}})
}

async fn store_with_history(label: &str) -> (common::TempDirectory, Store) {
    let (directory, store) = common::open_store(label).await;
    for seed in 1..=3 {
        let request = SavePreset {
            name: "portrait".into(),
            description: Some("soft light".into()),
            tags: Some(vec!["people".into()]),
            content: graph(seed),
            message: Some(format!("seed {seed}")),
        };
        store.save_preset(request).await.unwrap();
    }
    store
        .tag_preset_version(
            "portrait",
            "first",
            &store.preset_log("portrait", None).await.unwrap()[2].id,
        )
        .await
        .unwrap();
    (directory, store)
}

fn redemption(code: &str, password: Option<&str>, client: &str) -> Redemption {
    Redemption {
        code: code.to_owned(),
        password: password.map(str::to_owned),
        client: client.to_owned(),
        connection: String::new(),
    }
}

fn share(preset: &str) -> ShareRequest {
    ShareRequest {
        preset: preset.to_owned(),
        ..ShareRequest::default()
    }
}

#[tokio::test]
async fn a_bundle_round_trips_into_another_database_and_tampering_is_caught() {
    let (_directory, store) = store_with_history("bundle-source").await;
    let bundle = store.export_preset("portrait").await.unwrap();
    assert_eq!(bundle.versions.len(), 3);
    assert_eq!(bundle.versions[0].id, bundle.head_version);
    assert_eq!(bundle.version_tags.len(), 1);

    // Through JSON text, as a file would carry it.
    let text = serde_json::to_string(&bundle).unwrap();
    let (_other_directory, other) = common::open_store("bundle-target").await;
    let imported = other
        .import_preset_bundle(serde_json::from_str(&text).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(imported.content, graph(3));
    assert_eq!(imported.summary.head_version, bundle.head_version, "ids are kept");
    assert_eq!(imported.summary.tags, ["people"]);
    assert_eq!(
        other
            .get_preset_version("portrait", "first")
            .await
            .unwrap()
            .content,
        graph(1)
    );
    assert_eq!(other.preset_log("portrait", None).await.unwrap().len(), 3);
    let again = other
        .import_preset_bundle(bundle.clone(), None)
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::PresetExists { .. }), "{again}");

    let mut tampered = bundle.clone();
    tampered.versions[1].content = graph(99);
    let error = other
        .import_preset_bundle(tampered, Some("tampered".into()))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidBundle { .. }), "{error}");
    let mut renamed_parent = bundle.clone();
    renamed_parent.versions[0].message = Some("rewritten".into());
    let error = other
        .import_preset_bundle(renamed_parent, Some("rewritten".into()))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidBundle { .. }), "{error}");
    let mut wrong_format = bundle;
    wrong_format.format = "something else".into();
    assert!(matches!(
        other.import_preset_bundle(wrong_format, Some("x".into())).await,
        Err(StoreError::InvalidBundle { .. })
    ));
}

#[tokio::test]
async fn a_code_imports_the_shared_version_and_only_its_hash_is_stored() {
    let directory = common::TempDirectory::new("share-code");
    let store = Store::open(StoreOptions::new(directory.database()))
        .await
        .unwrap();
    store
        .save_preset(SavePreset {
            name: "p".into(),
            description: None,
            tags: None,
            content: graph(1),
            message: None,
        })
        .await
        .unwrap();
    store
        .save_preset(SavePreset {
            name: "p".into(),
            description: None,
            tags: None,
            content: graph(2),
            message: None,
        })
        .await
        .unwrap();
    let first = store.preset_log("p", None).await.unwrap()[1].id.clone();
    let created = store
        .share_preset(ShareRequest {
            version: Some(first.clone()),
            created_by: Some("alice".into()),
            ..share("p")
        })
        .await
        .unwrap();
    assert_eq!(created.share.version_id, first);
    assert!(!created.share.has_password);
    let code = created.code.reveal().to_owned();
    assert!(!format!("{created:?}").contains(&code), "Debug hides the code");

    // Typed carelessly: lower case, spaces instead of hyphens.
    let typed = code.to_lowercase().replace('-', " ");
    let imported = store
        .import_shared_preset(redemption(&typed, None, "bob"), Some("bob's copy".into()))
        .await
        .unwrap();
    assert_eq!(imported.content, graph(1), "the shared version, not the head");
    assert_eq!(imported.summary.head_version, first);
    assert_eq!(store.list_shares(Some("p".into())).await.unwrap()[0].use_count, 1);
    let taken = store
        .import_shared_preset(redemption(&code, None, "bob"), Some("bob's copy".into()))
        .await;
    assert!(matches!(taken, Err(StoreError::PresetExists { .. })), "{taken:?}");
    assert_eq!(
        store.list_shares(Some("p".into())).await.unwrap()[0].use_count,
        1,
        "a failed import uses nothing"
    );

    store.close().await;
    let raw = std::fs::read(directory.database()).unwrap();
    let wal = std::fs::read(directory.path().join("store.sqlite3-wal")).unwrap_or_default();
    let normalized = code.replace('-', "");
    for bytes in [&raw, &wal] {
        assert!(
            !bytes
                .windows(normalized.len())
                .any(|window| window == normalized.as_bytes()),
            "the code is not stored"
        );
    }
}

#[tokio::test]
async fn passwords_expiry_use_limits_and_revocation_are_enforced() {
    let (_directory, store) = store_with_history("share-rules").await;
    let protected = store
        .share_preset(ShareRequest {
            password: Some("correct horse".into()),
            ..share("portrait")
        })
        .await
        .unwrap();
    assert!(protected.share.has_password);
    let code = protected.code.reveal();
    assert!(matches!(
        store.redeem_share(redemption(code, None, "c")).await,
        Err(StoreError::PasswordRequired)
    ));
    assert!(matches!(
        store.redeem_share(redemption(code, Some("wrong"), "c")).await,
        Err(StoreError::WrongPassword)
    ));
    let bundle = store
        .redeem_share(redemption(code, Some("correct horse"), "c"))
        .await
        .unwrap();
    assert_eq!(bundle.versions[0].content, graph(3));

    let expired = store
        .share_preset(ShareRequest {
            expires_at_ms: Some(comfy_store::now_ms() - 1),
            ..share("portrait")
        })
        .await
        .unwrap();
    assert!(matches!(
        store
            .redeem_share(redemption(expired.code.reveal(), None, "c"))
            .await,
        Err(StoreError::ShareExpired)
    ));

    let once = store
        .share_preset(ShareRequest {
            max_uses: Some(1),
            ..share("portrait")
        })
        .await
        .unwrap();
    store
        .redeem_share(redemption(once.code.reveal(), None, "c"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .redeem_share(redemption(once.code.reveal(), None, "c"))
            .await,
        Err(StoreError::ShareUsedUp)
    ));

    let revoked = store.share_preset(share("portrait")).await.unwrap();
    let record = store.revoke_share(revoked.share.id).await.unwrap();
    assert!(record.revoked_at_ms.is_some());
    assert!(matches!(
        store
            .redeem_share(redemption(revoked.code.reveal(), None, "c"))
            .await,
        Err(StoreError::ShareRevoked)
    ));
    assert!(matches!(
        store
            .share_preset(ShareRequest {
                max_uses: Some(0),
                ..share("portrait")
            })
            .await,
        Err(StoreError::InvalidInput { .. })
    ));

    // Deleting the preset takes its shares with it.
    store.delete_preset("portrait").await.unwrap();
    assert!(store.list_shares(None).await.unwrap().is_empty());
    assert!(matches!(
        store
            .redeem_share(redemption(code, Some("correct horse"), "c"))
            .await,
        Err(StoreError::ShareNotFound)
    ));
}

#[tokio::test]
async fn wrong_codes_are_rate_limited_per_client_across_restarts_and_audited() {
    let directory = common::TempDirectory::new("share-rate");
    let mut options = StoreOptions::new(directory.database());
    options.share_attempt_limit = 3;
    options.share_attempt_window = Duration::from_secs(600);
    let store = Store::open(options.clone()).await.unwrap();
    store
        .save_preset(SavePreset {
            name: "p".into(),
            description: None,
            tags: None,
            content: graph(1),
            message: None,
        })
        .await
        .unwrap();
    let good = store.share_preset(share("p")).await.unwrap();

    for wrong in [
        "not a code",
        "0000-0000-0000-0000-0000-0000-0000",
        "1111-1111-1111-1111-1111-1111-1111",
    ] {
        let error = store
            .redeem_share(redemption(wrong, None, "mallory"))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::ShareNotFound), "{error}");
    }
    store.close().await;

    let store = Store::open(options).await.unwrap();
    let error = store
        .redeem_share(redemption(good.code.reveal(), None, "mallory"))
        .await
        .unwrap_err();
    match error {
        StoreError::RateLimited {
            client,
            retry_after_ms,
        } => {
            assert_eq!(client, "mallory");
            assert!(
                retry_after_ms > 0 && retry_after_ms <= 600_000,
                "{retry_after_ms}"
            );
        }
        other => panic!("expected a rate limit, got {other}"),
    }
    // Another client is not affected.
    store
        .redeem_share(redemption(good.code.reveal(), None, "alice"))
        .await
        .unwrap();

    let audit = store
        .query_audit(AuditQuery {
            tool: Some(SHARE_AUDIT_TOOL.into()),
            client: Some("mallory".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let outcomes: Vec<AuditOutcome> = audit.iter().map(|record| record.entry.outcome).collect();
    assert_eq!(
        outcomes,
        [
            AuditOutcome::RateLimited,
            AuditOutcome::Denied,
            AuditOutcome::Denied,
            AuditOutcome::Denied
        ]
    );
    assert!(audit.iter().all(|record| {
        record
            .entry
            .detail
            .as_deref()
            .is_some_and(|detail| !detail.contains("0000"))
    }));
}

#[tokio::test]
async fn the_rate_limit_counts_against_the_connection_not_the_client_name() {
    let directory = common::TempDirectory::new("share-connection");
    let mut options = StoreOptions::new(directory.database());
    options.share_attempt_limit = 2;
    let store = Store::open(options).await.unwrap();
    let attempt = |client: &str, connection: &str| Redemption {
        code: "0000-0000-0000-0000-0000-0000-0000".to_owned(),
        password: None,
        client: client.to_owned(),
        connection: connection.to_owned(),
    };
    for name in ["mallory", "mallory-2"] {
        let error = store
            .redeem_share(attempt(name, "http 10.0.0.9"))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::ShareNotFound), "{error}");
    }
    // A third name on the same connection gets no fresh budget...
    let error = store
        .redeem_share(attempt("claude-code", "http 10.0.0.9"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::RateLimited { .. }), "{error}");
    // ...and the real client of that name, on its own connection, is not locked out.
    let error = store
        .redeem_share(attempt("claude-code", "stdio process 7"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::ShareNotFound), "{error}");
    store.close().await;
}
