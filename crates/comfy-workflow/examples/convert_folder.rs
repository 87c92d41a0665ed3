//! Converts every UI workflow under a folder with a chosen frontend generation, the way
//! `comfyui-mcp convert --batch` does, for comparisons with a frontend recording
//! (`tests/frontend/compare.py`) before the CLI has a flag for the generation.
//!
//! ```sh
//! cargo run -p comfy-workflow --example convert_folder -- \
//!     --frontend 1.45 --object-info TRUTH/object_info.json --date 2024-03-05T06:07:08 \
//!     --frontend-missing-nodes TRUTH OUT
//! ```
//!
//! A JSON file with a `workflow_file` key (a `tests/frontend/record` record) stands for the UI
//! workflow it names. Each conversion is written to OUT at the same relative path as
//! `{source, output, diagnostics}`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use comfy_workflow::{
    ConvertOptions, Format, FrontendGeneration, LocalDateTime, ObjectInfo, detect_format, parse_lenient,
    ui_to_api_for,
};
use serde_json::{Value, json};

struct Arguments {
    frontend: FrontendGeneration,
    object_info: PathBuf,
    date: Option<LocalDateTime>,
    frontend_missing_nodes: bool,
    input: PathBuf,
    out: PathBuf,
}

fn parse_date(text: &str) -> Option<LocalDateTime> {
    let (date, time) = text.split_once('T').unwrap_or((text, "00:00:00"));
    let date: Vec<&str> = date.split('-').collect();
    let time: Vec<&str> = time.trim_end_matches('Z').split(':').collect();
    let [year, month, day] = date.as_slice() else {
        return None;
    };
    let [hour, minute, second] = time.as_slice() else {
        return None;
    };
    Some(LocalDateTime {
        year: year.parse().ok()?,
        month: month.parse().ok()?,
        day: day.parse().ok()?,
        hour: hour.parse().ok()?,
        minute: minute.parse().ok()?,
        second: second.split('.').next()?.parse().ok()?,
    })
}

fn parse_arguments() -> Result<Arguments, String> {
    let mut frontend = FrontendGeneration::default();
    let mut object_info = None;
    let mut date = None;
    let mut frontend_missing_nodes = false;
    let mut positional = Vec::new();
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--frontend" => {
                let value = arguments.next().ok_or("--frontend needs a value")?;
                frontend = FrontendGeneration::parse(&value)
                    .ok_or_else(|| format!("--frontend {value}: expected a version such as 1.32 or 1.45"))?;
            }
            "--object-info" => {
                object_info = Some(PathBuf::from(
                    arguments.next().ok_or("--object-info needs a file")?,
                ))
            }
            "--date" => {
                let value = arguments.next().ok_or("--date needs a value")?;
                date = Some(
                    parse_date(&value)
                        .ok_or_else(|| format!("--date {value}: expected 2024-03-05T06:07:08"))?,
                );
            }
            "--frontend-missing-nodes" => frontend_missing_nodes = true,
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            other => positional.push(PathBuf::from(other)),
        }
    }
    let [input, out] =
        <[PathBuf; 2]>::try_from(positional).map_err(|_| "give the input and output folders")?;
    Ok(Arguments {
        frontend,
        object_info: object_info.ok_or("--object-info is required")?,
        date,
        frontend_missing_nodes,
        input,
        out,
    })
}

fn json_files(directory: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(directory.join(&relative)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = relative.join(entry.file_name());
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "json") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn read(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    parse_lenient(&text).map_err(|error| format!("{}: {error}", path.display()))
}

fn run() -> Result<(), String> {
    let arguments = parse_arguments()?;
    let text = std::fs::read_to_string(&arguments.object_info)
        .map_err(|error| format!("{}: {error}", arguments.object_info.display()))?;
    let info = ObjectInfo::from_json_text(&text).map_err(|error| error.to_string())?;
    let options = ConvertOptions {
        now: arguments.date,
        frontend_missing_nodes: arguments.frontend_missing_nodes,
        ..ConvertOptions::default()
    };
    let started = std::time::Instant::now();
    let mut converted = 0;
    for relative in json_files(&arguments.input) {
        let path = arguments.input.join(&relative);
        let Ok(value) = read(&path) else {
            continue;
        };
        let workflow = match value.get("workflow_file").and_then(Value::as_str) {
            Some(file) => match read(&path.parent().unwrap_or(Path::new(".")).join(file)) {
                Ok(workflow) => workflow,
                Err(error) => {
                    write(&arguments.out.join(&relative), &json!({"error": error}))?;
                    continue;
                }
            },
            None => value,
        };
        if detect_format(&workflow) != Format::Ui {
            continue;
        }
        let conversion = ui_to_api_for(&workflow, &info, &options, arguments.frontend);
        let record = json!({
            "source": relative.display().to_string(),
            "output": conversion.prompt.to_json(),
            "diagnostics": serde_json::to_value(&conversion.diagnostics).unwrap_or_default(),
        });
        write(&arguments.out.join(&relative), &record)?;
        converted += 1;
    }
    eprintln!(
        "converted {converted} workflows as frontend {} in {:.2} s",
        arguments.frontend.as_str(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write(target: &Path, value: &Value) -> Result<(), String> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|error| format!("{}: {error}", parent.display()))?;
    }
    std::fs::write(
        target,
        serde_json::to_string_pretty(value).unwrap_or_default() + "\n",
    )
    .map_err(|error| format!("{}: {error}", target.display()))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
