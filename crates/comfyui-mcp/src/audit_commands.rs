//! `comfyui-mcp audit-prune`: deleting audit entries is an act of the operator on this machine, not
//! a tool: any MCP client could otherwise erase the record of what it did. The command opens only
//! the database; no ComfyUI is contacted.

use std::io::Write as _;
use std::process::ExitCode;

use serde_json::json;

use crate::settings::Settings;
use comfy_engine::timestamps::{format_rfc3339, parse_time};

#[derive(Debug, clap::Args)]
pub struct AuditPruneArguments {
    /// Delete entries older than this: an age such as 90d, an RFC 3339 date or date-time, or
    /// milliseconds since 1970
    #[arg(long)]
    pub before: String,
    /// Only count what would be deleted
    #[arg(long)]
    pub dry_run: bool,
}

/// Prunes (or counts) audit entries older than `--before`; prints a JSON summary on stdout.
/// Exit codes: 0 done, 2 the command could not run.
pub async fn prune(arguments: AuditPruneArguments, settings: &Settings) -> ExitCode {
    match prune_entries(&arguments, settings).await {
        Ok(summary) => {
            let mut stdout = std::io::stdout().lock();
            let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
            if writeln!(stdout, "{text}").and_then(|()| stdout.flush()).is_err() {
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn prune_entries(
    arguments: &AuditPruneArguments,
    settings: &Settings,
) -> Result<serde_json::Value, String> {
    let now = comfy_engine::types::now_ms();
    let before = parse_time(&arguments.before, now).map_err(|reason| format!("--before: {reason}"))?;
    let counted =
        comfy_engine::stored::prune_audit_log(settings.engine.database.as_deref(), before, arguments.dry_run)
            .await
            .map_err(|error| error.to_string())?;
    let summary = if arguments.dry_run {
        json!({"dry_run": true, "before": format_rfc3339(before), "would_delete": counted})
    } else {
        json!({"dry_run": false, "before": format_rfc3339(before), "deleted": counted})
    };
    Ok(summary)
}
