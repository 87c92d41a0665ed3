//! Asking the client during a tool call: the person, through elicitation (a form), or the
//! client's own model, through sampling. Two protocol eras ask differently:
//! - a session opened with `initialize` (2025-11-25) is asked directly: the server sends
//!   `elicitation/create` or `sampling/createMessage` and waits for the answer;
//! - a 2026-07-28 request cannot be answered by a server-to-client request, so the call ends with
//!   an `InputRequiredResult` naming what to ask, and the client calls the tool again with the
//!   answers (`inputResponses`), which the same code then finds here.
//!
//! Handlers call [`elicit`] or [`sample`]; `call_tool` installs the [`InputExchange`] that carries
//! the answers in and the questions out.

// rmcp marks sampling deprecated (SEP-2577 plans its successor); it is what clients offer today.
#![allow(deprecated)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{
    CallToolResult, CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult, ElicitRequest,
    ElicitRequestParams, ElicitResult, ElicitationSchema, InputRequest, InputRequests, InputRequiredResult,
    InputResponses, SamplingMessage,
};
use rmcp::service::{ElicitationMode, RequestContext};
use serde_json::Value;

use super::render::error_text;

/// How long a person has to fill in a form, and a model to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// The answers a retried call brought, and the questions this call leaves open.
#[derive(Debug, Default)]
pub(crate) struct InputExchange {
    answers: InputResponses,
    questions: Mutex<InputRequests>,
}

impl InputExchange {
    /// The answers of a retried call: those of its last round (`responses`) and of the rounds
    /// before, which travel in `state` (answers only: a client could as well have given other
    /// answers, so nothing in it is trusted more than an answer).
    pub(crate) fn new(responses: Option<InputResponses>, state: Option<&str>) -> Arc<InputExchange> {
        let mut answers: InputResponses = state
            .and_then(|state| serde_json::from_str(state).ok())
            .unwrap_or_default();
        answers.extend(responses.unwrap_or_default());
        Arc::new(InputExchange {
            answers,
            questions: Mutex::default(),
        })
    }

    /// What the call answers while questions are open: the questions, and every answer so far
    /// as the state the client echoes back (a chain of questions asks one round at a time).
    pub(crate) fn input_required(&self) -> Option<InputRequiredResult> {
        let questions = std::mem::take(
            &mut *self
                .questions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if questions.is_empty() {
            return None;
        }
        let state =
            (!self.answers.is_empty()).then(|| serde_json::to_string(&self.answers).unwrap_or_default());
        Some(InputRequiredResult::new(Some(questions), state))
    }

    fn ask(&self, key: &str, question: InputRequest) {
        self.questions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_owned(), question);
    }
}

/// Why no answer came back.
#[derive(Debug)]
pub(crate) enum Unanswered {
    /// The question travels in this call's `InputRequiredResult`; the handler should return
    /// [`waiting`] and let the client call again.
    Asked,
    /// The tool's answer instead: the client cannot be asked, declined, or failed.
    Refused(CallToolResult),
}

/// The placeholder a handler returns while its question is out (never shown: `call_tool`
/// answers with the questions).
pub(crate) fn waiting() -> CallToolResult {
    error_text("waiting for the client's answer")
}

fn exchange(context: &RequestContext<RoleServer>) -> Option<Arc<InputExchange>> {
    context.extensions.get::<Arc<InputExchange>>().cloned()
}

/// Whether this request cannot carry a server-to-client request (the 2026-07-28 era).
fn stateless(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| version >= rmcp::model::ProtocolVersion::V_2026_07_28)
}

/// Asks the person to fill in a form; `key` names the question across a retried call.
pub(crate) async fn elicit(
    context: &RequestContext<RoleServer>,
    key: &str,
    message: String,
    schema: ElicitationSchema,
) -> Result<ElicitResult, Unanswered> {
    let exchange = exchange(context);
    if let Some(answer) = exchange.as_ref().and_then(|exchange| exchange.answers.get(key)) {
        return serde_json::from_value(answer.clone()).map_err(|error| {
            Unanswered::Refused(error_text(format!(
                "the client's answer to {key} is not an elicitation result: {error}"
            )))
        });
    }
    let capable = context
        .client_capabilities()
        .and_then(|capabilities| capabilities.elicitation)
        .is_some();
    if !capable {
        return Err(Unanswered::Refused(error_text(
            "this client does not support elicitation (forms), so the person cannot be asked here; record judgements with experiment action judge instead",
        )));
    }
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema: schema,
    };
    if stateless(context) {
        let exchange = exchange.ok_or_else(|| Unanswered::Refused(waiting()))?;
        exchange.ask(key, InputRequest::Elicitation(ElicitRequest::new(params)));
        return Err(Unanswered::Asked);
    }
    if !context
        .peer
        .supported_elicitation_modes()
        .contains(&ElicitationMode::Form)
    {
        return Err(Unanswered::Refused(error_text(
            "this client supports only URL elicitation, not forms; record judgements with experiment action judge instead",
        )));
    }
    context
        .peer
        .create_elicitation_with_timeout(params, Some(ANSWER_TIMEOUT))
        .await
        .map_err(|error| Unanswered::Refused(error_text(format!("asking the person failed: {error}"))))
}

/// Asks the client's model, and answers its text; `key` names the question across a retried call.
pub(crate) async fn sample(
    context: &RequestContext<RoleServer>,
    key: &str,
    system: &str,
    request: String,
    max_tokens: u32,
) -> Result<(String, String), Unanswered> {
    let exchange = exchange(context);
    if let Some(answer) = exchange.as_ref().and_then(|exchange| exchange.answers.get(key)) {
        let result: CreateMessageResult = serde_json::from_value(answer.clone()).map_err(|error| {
            Unanswered::Refused(error_text(format!(
                "the client's answer to {key} is not a sampling result: {error}"
            )))
        })?;
        return Ok(text_of(&result));
    }
    let capable = context
        .client_capabilities()
        .and_then(|capabilities| capabilities.sampling)
        .is_some();
    if !capable {
        return Err(Unanswered::Refused(error_text(
            "this client does not support sampling (it cannot lend its model to a server), so the prompt cannot be rewritten by a model here; the history-based suggestions are in analyze_prompt",
        )));
    }
    let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(request)], max_tokens)
        .with_system_prompt(system);
    if stateless(context) {
        let exchange = exchange.ok_or_else(|| Unanswered::Refused(waiting()))?;
        exchange.ask(
            key,
            InputRequest::CreateMessage(CreateMessageRequest::new(params)),
        );
        return Err(Unanswered::Asked);
    }
    let result = tokio::time::timeout(ANSWER_TIMEOUT, context.peer.create_message(params))
        .await
        .map_err(|_| Unanswered::Refused(error_text("the client's model did not answer in 10 minutes")))?
        .map_err(|error| {
            Unanswered::Refused(error_text(format!("asking the client's model failed: {error}")))
        })?;
    Ok(text_of(&result))
}

/// The text of a model's answer and the model's name.
fn text_of(result: &CreateMessageResult) -> (String, String) {
    let content = serde_json::to_value(&result.message.content).unwrap_or_default();
    let mut texts = Vec::new();
    collect_texts(&content, &mut texts);
    (texts.join("\n"), result.model.clone())
}

fn collect_texts(value: &Value, texts: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| collect_texts(item, texts)),
        Value::Object(object) if object.get("type").and_then(Value::as_str) == Some("text") => {
            if let Some(text) = object.get("text").and_then(Value::as_str) {
                texts.push(text.to_owned());
            }
        }
        _ => {}
    }
}
