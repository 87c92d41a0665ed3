//! Presets through MCP against the real ComfyUI rig: save, list, apply, versions (log, diff,
//! rollback, fork, tags, merges), sharing by access code and bundles. Each session gets its own
//! database unless a test shares one on purpose. Needs `COMFYUI_MCP_TEST_URL` (see `scripts/test`).

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use comfy_engine::Engine;
use comfy_workflow::builders::{BuiltGraph, TextToImage};
use comfyui_mcp::mcp::ComfyServer;
use comfyui_mcp::settings::Settings;
use common::{is_error, json_of, settings_for, text_of, unique_prompt};
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use test_support::comfyui_url;

const CHECKPOINT: &str = "tiny-sd15-micro.ckpt";

/// An MCP client that introduces itself by `name` (the server's client identity).
#[derive(Clone)]
struct NamedClient {
    name: String,
}

impl ClientHandler for NamedClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new(self.name.clone(), "1.0"),
        )
    }
}

/// A database file removed (with its WAL files) when the last session using it ends.
struct Database {
    path: PathBuf,
}

impl Database {
    fn fresh() -> Arc<Database> {
        Arc::new(Database {
            path: std::env::temp_dir().join(format!("comfyui-mcp-presets-{}.sqlite", uuid::Uuid::new_v4())),
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// One MCP session (client `name`) with the presets toolset enabled.
struct Session {
    engine: Arc<Engine>,
    settings: Arc<Settings>,
    client: RunningService<RoleClient, NamedClient>,
    /// Kept so the database file outlives every session that uses it.
    _database: Arc<Database>,
}

impl Session {
    /// A new engine on `database`, and a client connected to it.
    async fn start(name: &str, database: Arc<Database>) -> Session {
        let mut settings = settings_for(&comfyui_url(), 120.0);
        settings.toolsets = vec!["core".to_owned(), "workflows".to_owned()];
        settings.engine.database = Some(database.path.clone());
        let engine = Engine::start(settings.engine.clone())
            .await
            .expect("engine starts");
        Session::attach(name, engine, Arc::new(settings), database).await
    }

    /// A client `name` of the server that `engine` drives.
    async fn attach(
        name: &str,
        engine: Arc<Engine>,
        settings: Arc<Settings>,
        database: Arc<Database>,
    ) -> Session {
        let server = ComfyServer::new(engine.clone(), settings.clone(), true);
        let (server_side, client_side) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            if let Ok(service) = server.serve(server_side).await {
                let _ = service.waiting().await;
            }
        });
        let client = NamedClient {
            name: name.to_owned(),
        }
        .serve(client_side)
        .await
        .expect("MCP initialize");
        Session {
            engine,
            settings,
            client,
            _database: database,
        }
    }

    /// Another client of the same server (same engine and database).
    async fn another_client(&self, name: &str) -> Session {
        Session::attach(
            name,
            self.engine.clone(),
            self.settings.clone(),
            self._database.clone(),
        )
        .await
    }

    async fn call(&self, tool: &str, arguments: Value) -> CallToolResult {
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object")
        };
        self.client
            .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
            .await
            .expect("tools/call answers")
    }

    /// Calls a tool that must succeed and returns its JSON.
    async fn ok(&self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments.clone()).await;
        assert!(
            !is_error(&result),
            "{tool} {arguments} failed: {}",
            text_of(&result)
        );
        json_of(&result)
    }

    /// Calls a tool that must fail and returns its text.
    async fn refused(&self, tool: &str, arguments: Value) -> String {
        let result = self.call(tool, arguments.clone()).await;
        assert!(
            is_error(&result),
            "{tool} {arguments} should fail, got {}",
            text_of(&result)
        );
        text_of(&result)
    }
}

fn txt2img(steps: u32, seed: u64) -> BuiltGraph {
    TextToImage {
        checkpoint: CHECKPOINT.to_owned(),
        prompt: "a small red boat".to_owned(),
        negative_prompt: String::new(),
        width: 64,
        height: 64,
        batch_size: 1,
        steps,
        cfg: 7.0,
        sampler: "euler".to_owned(),
        scheduler: "normal".to_owned(),
        seed,
        denoise: 1.0,
        loras: Vec::new(),
        filename_prefix: "preset-test".to_owned(),
    }
    .build()
}

/// A workflow JSON with one input of one node changed.
fn with_input(graph: &BuiltGraph, node: &str, input: &str, value: Value) -> Value {
    let mut workflow = graph.prompt.to_json();
    workflow[node]["inputs"][input] = value;
    workflow
}

fn version_ids(log: &Value) -> Vec<String> {
    log["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|version| version["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_are_saved_listed_by_tag_and_applied_with_overrides() {
    let session = Session::start("painter", Database::fresh()).await;
    let graph = txt2img(4, 1);
    let saved = session
        .ok(
            "preset",
            json!({"action": "save", "name": "tiny boat", "workflow": graph.prompt.to_json(),
                   "description": "64x64 test image", "tags": ["txt2img", "tiny"], "message": "first"}),
        )
        .await;
    assert_eq!(saved["new_version"], true, "{saved}");
    assert_eq!(saved["converted_from_ui"], false, "{saved}");
    session
        .ok(
            "preset",
            json!({"action": "save", "name": "other", "workflow": graph.prompt.to_json(), "tags": ["upscale"]}),
        )
        .await;

    let listed = session
        .ok("preset", json!({"action": "list", "tag": "txt2img"}))
        .await;
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["presets"][0]["name"], "tiny boat");
    assert_eq!(listed["presets"][0]["use_count"], 0);
    assert_eq!(listed["presets"][0]["tags"], json!(["tiny", "txt2img"]));

    let fetched = session
        .ok("preset", json!({"action": "get", "name": "tiny boat"}))
        .await;
    assert_eq!(fetched["workflow"], graph.prompt.to_json());
    assert_eq!(fetched["is_head"], true);

    // An argument the action does not use is refused, not ignored.
    let misplaced = session
        .refused(
            "preset",
            json!({"action": "list", "tag": "txt2img", "overrides": {}}),
        )
        .await;
    assert!(misplaced.contains("unknown field `overrides`"), "{misplaced}");

    let prompt = unique_prompt("a small red boat");
    let sampler = &graph.sampler_node;
    let positive = graph.prompt.get(sampler).expect("sampler").inputs["positive"][0]
        .as_str()
        .expect("positive link")
        .to_owned();
    let applied = session
        .call(
            "preset",
            json!({"action": "apply", "name": "tiny boat",
                   "overrides": {format!("{sampler}.seed"): 4242, format!("{positive}.text"): prompt}}),
        )
        .await;
    assert!(!is_error(&applied), "apply failed: {}", text_of(&applied));
    let summary = json_of(&applied);
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(summary["parameters"]["preset"], "tiny boat");
    assert_eq!(summary["outputs"][0]["media_type"], "image/png", "{summary}");
    let image = applied
        .content
        .iter()
        .find_map(|block| block.as_image())
        .expect("an inline image");
    assert_eq!(image.mime_type, "image/png");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&image.data)
        .expect("base64");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

    // The overrides reached the queued graph.
    let job_id = summary["job_id"].as_str().expect("job id");
    let record = session.engine.stored_job(job_id).await.expect("job recorded");
    assert_eq!(record.workflow.as_deref(), Some("preset:tiny boat"));
    assert_eq!(record.request["prompt"][sampler]["inputs"]["seed"], 4242);
    assert_eq!(
        record.request["prompt"][positive.as_str()]["inputs"]["text"],
        prompt
    );

    let listed = session
        .ok("preset", json!({"action": "list", "tag": "txt2img"}))
        .await;
    assert_eq!(listed["presets"][0]["use_count"], 1, "{listed}");
    assert!(listed["presets"][0]["last_used_at_ms"].is_i64(), "{listed}");

    // A bad override is refused before anything is queued, and counts no use.
    let refused = session
        .refused(
            "preset",
            json!({"action": "apply", "name": "tiny boat", "overrides": {"999.seed": 1}}),
        )
        .await;
    assert!(refused.contains("999"), "{refused}");
    let listed = session.ok("preset", json!({"action": "list"})).await;
    assert_eq!(listed["count"], 2);
    assert_eq!(listed["presets"][1]["use_count"], 1, "{listed}");

    session
        .ok("preset", json!({"action": "delete", "name": "other"}))
        .await;
    let missing = session
        .refused("preset", json!({"action": "get", "name": "other"}))
        .await;
    assert!(
        missing.contains("not found") && missing.contains("action=list"),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_have_a_log_a_diff_tags_rollback_and_forks() {
    let session = Session::start("editor", Database::fresh()).await;
    let graph = txt2img(4, 1);
    let sampler = graph.sampler_node.clone();
    let first = session
        .ok(
            "preset",
            json!({"action": "save", "name": "boat", "workflow": graph.prompt.to_json(), "message": "four steps"}),
        )
        .await;
    let first_id = first["version"].as_str().expect("version").to_owned();
    let second = session
        .ok(
            "preset",
            json!({"action": "save", "name": "boat", "message": "eight steps",
                   "workflow": with_input(&graph, &sampler, "steps", json!(8))}),
        )
        .await;
    let second_id = second["version"].as_str().expect("version").to_owned();
    assert_ne!(first_id, second_id);
    assert_eq!(second["parent"], first_id.as_str(), "{second}");

    let log = session
        .ok("preset_version", json!({"action": "log", "name": "boat"}))
        .await;
    assert_eq!(version_ids(&log), [second_id.clone(), first_id.clone()], "{log}");
    assert_eq!(log["versions"][0]["parents"], json!([&first_id[..12]]), "{log}");
    assert_eq!(log["versions"][0]["message"], "eight steps");
    assert_eq!(log["versions"][1]["parents"], json!([]));

    let diff = session
        .ok("preset_version", json!({"action": "diff", "name": "boat"}))
        .await;
    assert_eq!(diff["change_count"], 1, "{diff}");
    let line = diff["changes"][0].as_str().expect("a change line");
    assert!(
        line.contains(&format!("node {sampler} (KSampler) input steps: 4 -> 8")),
        "{diff}"
    );

    // A rewired link and an added node are named too.
    let mut rewired = with_input(&graph, &sampler, "steps", json!(8));
    rewired["90"] =
        json!({"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}});
    rewired[&sampler]["inputs"]["latent_image"] = json!(["90", 0]);
    session
        .ok(
            "preset",
            json!({"action": "save", "name": "boat", "workflow": rewired, "message": "own latent"}),
        )
        .await;
    let diff = session
        .ok("preset_version", json!({"action": "diff", "name": "boat"}))
        .await;
    let lines = diff["changes"].to_string();
    assert!(lines.contains("+ node 90 (EmptyLatentImage) added"), "{diff}");
    assert!(lines.contains("link latent_image rewired"), "{diff}");

    session
        .ok(
            "preset_version",
            json!({"action": "tag", "name": "boat", "tag": "v1", "version": &first_id[..10]}),
        )
        .await;
    let tagged = session
        .ok(
            "preset",
            json!({"action": "get", "name": "boat", "version": "v1"}),
        )
        .await;
    assert_eq!(tagged["workflow"][&sampler]["inputs"]["steps"], 4, "{tagged}");
    assert_eq!(tagged["version"]["tags"], json!(["v1"]));
    assert_eq!(tagged["is_head"], false);

    let rolled = session
        .ok(
            "preset_version",
            json!({"action": "rollback", "name": "boat", "version": "v1"}),
        )
        .await;
    let head = session
        .ok("preset", json!({"action": "get", "name": "boat"}))
        .await;
    assert_eq!(head["workflow"], graph.prompt.to_json(), "{rolled}");
    let log = session
        .ok("preset_version", json!({"action": "log", "name": "boat"}))
        .await;
    assert_eq!(log["count"], 4, "history is kept: {log}");
    assert_eq!(log["versions"][0]["id"], rolled["head"]["id"]);

    let forked = session
        .ok(
            "preset_version",
            json!({"action": "fork", "name": "boat", "version": second_id, "new_name": "boat fork"}),
        )
        .await;
    assert_eq!(forked["preset"]["name"], "boat fork", "{forked}");
    let fork_log = session
        .ok("preset_version", json!({"action": "log", "name": "boat fork"}))
        .await;
    assert_eq!(
        fork_log["versions"][0]["parents"],
        json!([&second_id[..12]]),
        "{fork_log}"
    );
    let fork_head = session
        .ok("preset", json!({"action": "get", "name": "boat fork"}))
        .await;
    assert_eq!(fork_head["workflow"][&sampler]["inputs"]["steps"], 8);

    session
        .ok(
            "preset_version",
            json!({"action": "untag", "name": "boat", "tag": "v1"}),
        )
        .await;
    let gone = session
        .refused(
            "preset",
            json!({"action": "get", "name": "boat", "version": "v1"}),
        )
        .await;
    assert!(
        gone.contains("not found") && gone.contains("action=log"),
        "{gone}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_store_clean_results_and_report_conflicts() {
    let session = Session::start("merger", Database::fresh()).await;
    let graph = txt2img(4, 1);
    let sampler = graph.sampler_node.clone();
    let base = graph.prompt.to_json();
    session
        .ok(
            "preset",
            json!({"action": "save", "name": "main", "workflow": base}),
        )
        .await;
    session
        .ok(
            "preset_version",
            json!({"action": "fork", "name": "main", "new_name": "branch"}),
        )
        .await;
    let ours = with_input(&graph, &sampler, "steps", json!(8));
    session
        .ok(
            "preset",
            json!({"action": "save", "name": "main", "workflow": ours}),
        )
        .await;
    let mut theirs = base.clone();
    theirs[&sampler]["inputs"]["cfg"] = json!(5.0);
    session
        .ok(
            "preset",
            json!({"action": "save", "name": "branch", "workflow": theirs}),
        )
        .await;

    let main_head = session
        .ok("preset", json!({"action": "get", "name": "main"}))
        .await;
    let branch_head = session
        .ok("preset", json!({"action": "get", "name": "branch"}))
        .await;
    let merged = session
        .ok(
            "preset_version",
            json!({"action": "merge", "name": "main", "from_preset": "branch"}),
        )
        .await;
    assert_eq!(merged["status"], "merged", "{merged}");
    assert_eq!(
        merged["head"]["parents"],
        json!([
            &main_head["version"]["id"].as_str().expect("id")[..12],
            &branch_head["version"]["id"].as_str().expect("id")[..12]
        ]),
        "{merged}"
    );
    assert!(
        merged["changes_to_ours"]
            .to_string()
            .contains("input cfg: 7.0 -> 5.0"),
        "{merged}"
    );
    let head = session
        .ok("preset", json!({"action": "get", "name": "main"}))
        .await;
    assert_eq!(head["workflow"][&sampler]["inputs"]["steps"], 8, "{head}");
    assert_eq!(head["workflow"][&sampler]["inputs"]["cfg"], 5.0, "{head}");

    // Merging again changes nothing.
    let again = session
        .ok(
            "preset_version",
            json!({"action": "merge", "name": "main", "from_preset": "branch"}),
        )
        .await;
    assert_eq!(again["status"], "up_to_date", "{again}");

    // Both sides change the seed: a conflict, and nothing is stored.
    let mut ours = head["workflow"].clone();
    ours[&sampler]["inputs"]["seed"] = json!(111);
    session
        .ok(
            "preset",
            json!({"action": "save", "name": "main", "workflow": ours}),
        )
        .await;
    let mut theirs = branch_head["workflow"].clone();
    theirs[&sampler]["inputs"]["seed"] = json!(222);
    session
        .ok(
            "preset",
            json!({"action": "save", "name": "branch", "workflow": theirs}),
        )
        .await;
    let before = session
        .ok("preset_version", json!({"action": "log", "name": "main"}))
        .await;
    let conflicted = session
        .call(
            "preset_version",
            json!({"action": "merge", "name": "main", "from_preset": "branch"}),
        )
        .await;
    assert!(
        is_error(&conflicted),
        "a conflict is not a success: {}",
        text_of(&conflicted)
    );
    let report = json_of(&conflicted);
    assert_eq!(report["status"], "conflicts", "{report}");
    assert_eq!(report["conflict_count"], 1, "{report}");
    assert_eq!(report["conflicts"][0]["node_id"], sampler.as_str());
    assert_eq!(report["conflicts"][0]["input"], "seed");
    assert_eq!(report["conflicts"][0]["ours"], 111);
    assert_eq!(report["conflicts"][0]["theirs"], 222);
    let after = session
        .ok("preset_version", json!({"action": "log", "name": "main"}))
        .await;
    assert_eq!(
        version_ids(&before),
        version_ids(&after),
        "a conflicted merge stores nothing"
    );

    // The resolved draft is stored as the merge.
    let mut resolution = report["draft"].clone();
    resolution[&sampler]["inputs"]["seed"] = json!(333);
    let resolved = session
        .ok(
            "preset_version",
            json!({"action": "merge", "name": "main", "from_preset": "branch", "workflow": resolution,
                   "message": "take 333"}),
        )
        .await;
    assert_eq!(resolved["status"], "merged", "{resolved}");
    assert_eq!(resolved["head"]["message"], "take 333");
    assert_eq!(resolved["head"]["parents"].as_array().map(Vec::len), Some(2));
    let head = session
        .ok("preset", json!({"action": "get", "name": "main"}))
        .await;
    assert_eq!(head["workflow"][&sampler]["inputs"]["seed"], 333);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_codes_work_once_need_the_password_and_can_be_revoked() {
    let owner = Session::start("owner", Database::fresh()).await;
    let graph = txt2img(4, 1);
    owner
        .ok(
            "preset",
            json!({"action": "save", "name": "shared boat", "workflow": graph.prompt.to_json(), "tags": ["txt2img"]}),
        )
        .await;
    let shared = owner
        .ok(
            "preset_share",
            json!({"action": "share", "name": "shared boat", "password": "sesame", "max_uses": 1,
                   "expires_in_seconds": 3600}),
        )
        .await;
    let code = shared["access_code"].as_str().expect("a code").to_owned();
    assert_eq!(shared["share"]["has_password"], true, "{shared}");
    assert_eq!(shared["share"]["created_by"], "owner");

    // The code lives in the database that holds the share: another database does not know it.
    let elsewhere = Session::start("stranger", Database::fresh()).await;
    let unknown = elsewhere
        .refused(
            "preset_share",
            json!({"action": "import_code", "code": code, "password": "sesame"}),
        )
        .await;
    assert!(unknown.contains("access code refused"), "{unknown}");

    // Another client of the same server redeems it.
    let importer = owner.another_client("importer").await;
    let wrong = importer
        .refused(
            "preset_share",
            json!({"action": "import_code", "code": code, "password": "open"}),
        )
        .await;
    assert!(
        wrong.contains("access code refused") && wrong.contains("password"),
        "{wrong}"
    );
    assert!(!wrong.contains("sesame") && !wrong.contains(&code), "{wrong}");
    let audit = owner
        .engine
        .query_audit(comfy_store::AuditQuery {
            tool: Some(comfy_store::SHARE_AUDIT_TOOL.to_owned()),
            client: Some("importer".to_owned()),
            ..Default::default()
        })
        .await
        .expect("audit");
    assert!(
        audit
            .iter()
            .any(|record| record.entry.outcome == comfy_store::AuditOutcome::Denied
                && record.entry.detail.as_deref() == Some("wrong password")),
        "{audit:?}"
    );

    let imported = importer
        .ok(
            "preset_share",
            json!({"action": "import_code", "code": code.to_lowercase(), "password": "sesame", "name": "my boat"}),
        )
        .await;
    assert_eq!(imported["imported"], "my boat", "{imported}");
    let copy = importer
        .ok("preset", json!({"action": "get", "name": "my boat"}))
        .await;
    assert_eq!(copy["workflow"], graph.prompt.to_json());
    assert_eq!(copy["preset"]["tags"], json!(["txt2img"]));

    let used_up = importer
        .refused(
            "preset_share",
            json!({"action": "import_code", "code": code, "password": "sesame", "name": "my boat 2"}),
        )
        .await;
    assert!(used_up.contains("use limit"), "{used_up}");
    let listed = owner
        .ok("preset_share", json!({"action": "list", "name": "shared boat"}))
        .await;
    assert_eq!(listed["shares"][0]["use_count"], 1, "{listed}");

    // A revoked code stops working at once.
    let second = owner
        .ok("preset_share", json!({"action": "share", "name": "shared boat"}))
        .await;
    let share_id = second["share"]["id"].as_i64().expect("share id");
    owner
        .ok("preset_share", json!({"action": "revoke", "share_id": share_id}))
        .await;
    let revoked = importer
        .refused(
            "preset_share",
            json!({"action": "import_code", "code": second["access_code"], "name": "my boat 3"}),
        )
        .await;
    assert!(revoked.contains("revoked"), "{revoked}");

    // Guessing is rate-limited per client.
    let guesser = owner.another_client("guesser").await;
    let mut last = String::new();
    for _ in 0..11 {
        last = guesser
            .refused(
                "preset_share",
                json!({"action": "import_code", "code": "0000-0000-0000-0000-0000-0000-0000"}),
            )
            .await;
    }
    assert!(last.contains("too many failed attempts"), "{last}");

    // The limit counts against the connection, not the name a client gives itself: a client that
    // renames itself does not get a fresh budget.
    let renamed = owner.another_client("claude-code").await;
    let refused = renamed
        .refused(
            "preset_share",
            json!({"action": "import_code", "code": "0000-0000-0000-0000-0000-0000-0001"}),
        )
        .await;
    assert!(refused.contains("too many failed attempts"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_round_trip_inline_and_through_files() {
    let source = Session::start("exporter", Database::fresh()).await;
    let graph = txt2img(4, 1);
    let sampler = graph.sampler_node.clone();
    source
        .ok(
            "preset",
            json!({"action": "save", "name": "boat", "workflow": graph.prompt.to_json()}),
        )
        .await;
    source
        .ok(
            "preset",
            json!({"action": "save", "name": "boat", "workflow": with_input(&graph, &sampler, "steps", json!(8))}),
        )
        .await;
    source
        .ok(
            "preset_version",
            json!({"action": "tag", "name": "boat", "tag": "eight"}),
        )
        .await;
    let source_log = source
        .ok("preset_version", json!({"action": "log", "name": "boat"}))
        .await;

    let exported = source
        .ok("preset_share", json!({"action": "export_bundle", "name": "boat"}))
        .await;
    assert_eq!(exported["versions"], 2, "{exported}");

    let target = Session::start("importer", Database::fresh()).await;
    target
        .ok(
            "preset_share",
            json!({"action": "import_bundle", "bundle": exported["bundle"]}),
        )
        .await;
    let target_log = target
        .ok("preset_version", json!({"action": "log", "name": "boat"}))
        .await;
    assert_eq!(
        version_ids(&source_log),
        version_ids(&target_log),
        "ids survive the trip"
    );
    assert_eq!(target_log["versions"][0]["tags"], json!(["eight"]));

    let mut tampered = exported["bundle"].clone();
    tampered["versions"][0]["content"][&sampler]["inputs"]["steps"] = json!(9);
    let refused = target
        .refused(
            "preset_share",
            json!({"action": "import_bundle", "bundle": tampered, "name": "tampered"}),
        )
        .await;
    assert!(refused.contains("does not match its hash"), "{refused}");

    let file = std::env::temp_dir().join(format!("comfyui-mcp-bundle-{}.json", uuid::Uuid::new_v4()));
    let path = file.display().to_string();
    source
        .ok(
            "preset_share",
            json!({"action": "export_bundle", "name": "boat", "path": path}),
        )
        .await;
    let exists = source
        .refused(
            "preset_share",
            json!({"action": "export_bundle", "name": "boat", "path": path}),
        )
        .await;
    assert!(exists.contains("already exists"), "{exists}");
    let from_file = target
        .ok(
            "preset_share",
            json!({"action": "import_bundle", "path": path, "name": "boat from file"}),
        )
        .await;
    assert_eq!(
        from_file["preset"]["head_version"], target_log["versions"][0]["id"],
        "{from_file}"
    );
    let taken = target
        .refused("preset_share", json!({"action": "import_bundle", "path": path}))
        .await;
    assert!(taken.contains("already exists"), "{taken}");
    let _ = std::fs::remove_file(&file);
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_workflows_are_converted_when_saved() {
    let session = Session::start("designer", Database::fresh()).await;
    let saved = session
        .ok(
            "preset",
            json!({"action": "save", "name": "from the editor", "workflow": fixture("txt2img_ui.json")}),
        )
        .await;
    assert_eq!(saved["converted_from_ui"], true, "{saved}");
    let stored = session
        .ok("preset", json!({"action": "get", "name": "from the editor"}))
        .await;
    let workflow = &stored["workflow"];
    assert_eq!(workflow["3"]["class_type"], "KSampler", "{workflow}");
    assert_eq!(
        workflow["3"]["inputs"]["seed"], 123456,
        "the primitive's value: {workflow}"
    );
    assert!(
        workflow.get("11").is_none(),
        "notes never reach an API prompt: {workflow}"
    );
    assert!(
        workflow
            .as_object()
            .expect("object")
            .values()
            .all(|node| node["class_type"].is_string()),
        "{workflow}"
    );

    // A node type this ComfyUI lacks cannot be converted: nothing is saved.
    let mut unknown = fixture("txt2img_ui.json");
    unknown["nodes"][0]["type"] = json!("NoSuchLoader");
    let refused = session
        .refused(
            "preset",
            json!({"action": "save", "name": "broken", "workflow": unknown}),
        )
        .await;
    assert!(
        refused.contains("cannot be converted") && refused.contains("NoSuchLoader"),
        "{refused}"
    );
    let missing = session
        .refused("preset", json!({"action": "get", "name": "broken"}))
        .await;
    assert!(missing.contains("not found"), "{missing}");
}
