//! Table-driven requests: each case is one HTTP request and the answer it must get. A table
//! runs every case and then fails once, naming each case that did not get its answer.

use super::TestApp;
use reqwest::Method;
use serde_json::Value;

/// A request body.
pub enum Body {
    None,
    Json(Value),
    /// Bytes with this `Content-Type` (none when `None`).
    Raw {
        content_type: Option<&'static str>,
        bytes: Vec<u8>,
    },
}

/// What a case must be answered.
#[derive(Clone, Copy)]
pub struct Expect {
    pub status: u16,
    /// The error code; only for errors.
    pub code: Option<&'static str>,
    /// Words the error's message must contain, where the code alone does not tell two
    /// answers apart (a channel not found, or a message).
    pub message_contains: Option<&'static str>,
}

pub struct Case {
    pub name: String,
    pub method: Method,
    /// The path (and query), from the root.
    pub path: String,
    pub body: Body,
    /// The whole `Authorization` header.
    pub authorization: Option<String>,
    pub headers: Vec<(&'static str, String)>,
    pub expect: Expect,
}

impl Case {
    pub fn new(name: impl Into<String>, method: Method, path: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            method,
            path: path.into(),
            body: Body::None,
            authorization: None,
            headers: Vec::new(),
            expect: Expect { status: 0, code: None, message_contains: None },
        }
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    pub fn raw(mut self, content_type: Option<&'static str>, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Raw { content_type, bytes: bytes.into() };
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.authorization(format!("Bearer {token}"))
    }

    pub fn authorization(mut self, value: impl Into<String>) -> Self {
        self.authorization = Some(value.into());
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A success status.
    pub fn ok(mut self, status: u16) -> Self {
        self.expect = Expect { status, code: None, message_contains: None };
        self
    }

    /// An error status with its code.
    pub fn fails(mut self, status: u16, code: &'static str) -> Self {
        self.expect = Expect { status, code: Some(code), message_contains: None };
        self
    }

    /// … whose message contains `words`.
    pub fn saying(mut self, words: &'static str) -> Self {
        self.expect.message_contains = Some(words);
        self
    }

    /// Sends the request; the answer's status and body (`Null` when empty or not JSON).
    pub async fn send(&self, app: &TestApp) -> Result<(u16, reqwest::header::HeaderMap, Value), String> {
        let mut request = app.client.request(self.method.clone(), app.url(&self.path));
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        request = match &self.body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::Raw { content_type, bytes } => {
                let request = request.body(bytes.clone());
                match content_type {
                    Some(content_type) => request.header("content-type", *content_type),
                    None => request,
                }
            }
        };
        let response = request.send().await.map_err(|e| format!("no answer: {e}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| format!("reading the body: {e}"))?;
        Ok((status, headers, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Sends the request and checks the answer; what is wrong with it, if anything.
    pub async fn check(&self, app: &TestApp) -> Result<Value, String> {
        let (status, headers, body) = self.send(app).await?;
        let expect = self.expect;
        if status != expect.status {
            return Err(format!("expected {}, got {status} {body}", expect.status));
        }
        check_headers(&headers)?;
        let Some(code) = expect.code else { return Ok(body) };
        check_error_body(&headers, &body)?;
        if body["error"]["code"] != code {
            return Err(format!("expected code {code}, got {body}"));
        }
        if let Some(words) = expect.message_contains
            && !body["error"]["message"].as_str().unwrap_or_default().contains(words)
        {
            return Err(format!("expected a message saying {words:?}, got {body}"));
        }
        Ok(body)
    }
}

/// The headers every answer carries (`docs/security.md`).
fn check_headers(headers: &reqwest::header::HeaderMap) -> Result<(), String> {
    let expected = [
        ("strict-transport-security", "max-age=63072000; includeSubDomains"),
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("referrer-policy", "no-referrer"),
    ];
    for (name, value) in expected {
        if headers.get(name).and_then(|v| v.to_str().ok()) != Some(value) {
            return Err(format!("header {name} is {:?}, not {value:?}", headers.get(name)));
        }
    }
    Ok(())
}

/// The stable error body: JSON, `{"error": {"code", "message"}}` and nothing else.
fn check_error_body(headers: &reqwest::header::HeaderMap, body: &Value) -> Result<(), String> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type != "application/json" {
        return Err(format!("an error answered as {content_type:?}, not JSON: {body}"));
    }
    let error = body.as_object().filter(|b| b.len() == 1).and_then(|b| b.get("error"));
    let shaped = error.and_then(Value::as_object).is_some_and(|e| {
        e.len() == 2
            && e.get("code").is_some_and(Value::is_string)
            && e.get("message").is_some_and(Value::is_string)
    });
    if !shaped {
        return Err(format!("the error body is not {{\"error\": {{\"code\", \"message\"}}}}: {body}"));
    }
    Ok(())
}

/// Runs every case in order; panics once, listing each case that failed and why.
pub async fn run_table(app: &TestApp, table: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        if let Err(why) = case.check(app).await {
            failures.push(format!("  {} {} [{}]: {why}", case.method, case.path, case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{table}: {} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
