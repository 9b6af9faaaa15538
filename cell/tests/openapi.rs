//! The REST contract a gateway serves at `/api/v1/openapi.json`, held against the gateway
//! itself: an OpenAPI 3 document whose references resolve; every operation in it routed by a
//! live gateway, and marked with the `bearer` requirement exactly when its handler wants a
//! token; its links between operations resolve; the web client's copy is the same; no REST route registered in the gateway's
//! source but through `routes!` (which puts it in the document too); Swagger UI at `/docs`.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use shared::local::{CellOptions, TestCell};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

const DOCUMENT: &str = "/api/v1/openapi.json";
const SWAGGER_UI: &str = "/docs";

/// Routes the gateway serves but leaves out of the document, as the first argument of their
/// `.route(…)`: the WebSocket upgrade is not REST (`docs/protocol.md` describes it).
const UNDOCUMENTED_ROUTES: [&str; 1] = ["\"/ws\""];

#[tokio::test]
async fn the_gateway_serves_a_document_of_every_route_it_has() {
    let cell = TestCell::start(CellOptions::default()).await.expect("the cell starts");
    let base = cell.gateway_url(0);
    let response = reqwest::get(format!("{base}{DOCUMENT}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();

    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "not OpenAPI 3: {version:?}");
    assert!(!document["info"]["version"].as_str().unwrap_or_default().is_empty());
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_references_resolve(&document);

    let operations = operations_of(&document);
    assert!(operations.len() > 20, "only {} operations", operations.len());
    let ids: HashSet<&str> = operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids.len(), operations.len(), "operationIds are not unique");

    assert_links_name_operations_and_their_parameters(&document, &operations);

    assert!(is_route_fallback(&probe(&base, &Method::GET, "/api/v1/no-such-route").await));
    for operation in &operations {
        let answer = probe(&base, &operation.method, &operation.concrete_path(&document)).await;
        assert!(!is_route_fallback(&answer), "{operation} is documented but not routed: {answer:?}");
        assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{operation} is documented but not routed");
        let wants_token = answer.status == StatusCode::UNAUTHORIZED && answer.code == "unauthorized";
        assert_eq!(operation.bearer, wants_token, "{operation}: the bearer requirement is wrong: {answer:?}");
    }

    assert_swagger_ui_shows_the_document(&base).await;

    // The web client's API types are generated from its copy of the document: a change to the
    // API shows there, and breaks the client's type check where it no longer fits.
    let copy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/openapi.json");
    let copy: Value = serde_json::from_str(&std::fs::read_to_string(&copy).unwrap()).unwrap();
    assert!(copy == document, "web/openapi.json is not the gateway's document: run scripts/web.sh api");
}

/// A REST route registered with a plain `.route(…)` (or as a service) is in the router but not
/// in the document: only `routes!` registers both.
#[test]
fn no_route_is_registered_past_the_document() {
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/src");
    let mut undocumented = Vec::new();
    for file in rust_files(&sources) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (method, first_argument) in route_registrations(&text) {
            if !(method == "route" && UNDOCUMENTED_ROUTES.contains(&first_argument.as_str())) {
                undocumented.push(format!("{}: .{method}({first_argument}, …)", file.display()));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "routes outside the OpenAPI document; register them with `routes!` (see \
         gateway/src/http/openapi.rs): {undocumented:#?}"
    );
}

/// One method of one path of the document.
struct Operation {
    method: Method,
    path: String,
    id: String,
    bearer: bool,
    parameters: Vec<Value>,
}

impl Operation {
    /// The path with plausible values for its parameters: a parameter's example, a fresh
    /// UUID for a UUID, `1` otherwise.
    fn concrete_path(&self, document: &Value) -> String {
        self.parameters.iter().filter(|p| p["in"] == "path").fold(self.path.clone(), |path, parameter| {
            let name = parameter["name"].as_str().unwrap();
            let schema = resolve(document, &parameter["schema"]);
            let value = match (&schema["example"], &schema["format"]) {
                (Value::String(example), _) => example.clone(),
                (_, format) if format == "uuid" => uuid::Uuid::new_v4().to_string(),
                _ => "1".to_owned(),
            };
            path.replace(&format!("{{{name}}}"), &value)
        })
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.method, self.path, self.id)
    }
}

fn operations_of(document: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else { continue };
            let bearer = operation["security"]
                .as_array()
                .is_some_and(|requirements| requirements.iter().any(|r| r.get("bearer").is_some()));
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            let declared: HashSet<&str> =
                parameters.iter().filter(|p| p["in"] == "path").filter_map(|p| p["name"].as_str()).collect();
            let templated: HashSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
            assert_eq!(declared, templated, "{method} {path}: path parameters");
            let id = operation["operationId"].as_str().unwrap_or_default().to_owned();
            operations.push(Operation { method, path: path.clone(), id, bearer, parameters });
        }
    }
    operations
}

/// Every link of every answer names an operation of the document and only parameters it
/// has; the operations that create things link to those that use them.
fn assert_links_name_operations_and_their_parameters(document: &Value, operations: &[Operation]) {
    let mut links = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    let from = format!("{method} {path} {status} → {name}");
                    let target =
                        link["operationId"].as_str().unwrap_or_else(|| panic!("{from}: no operationId"));
                    let target = operations
                        .iter()
                        .find(|o| o.id == target)
                        .unwrap_or_else(|| panic!("{from}: no operation {target}"));
                    for parameter in link["parameters"].as_object().unwrap().keys() {
                        assert!(
                            target.parameters.iter().any(|p| p["name"] == parameter.as_str()),
                            "{from}: {target} has no parameter {parameter}"
                        );
                    }
                    links += 1;
                }
            }
        }
    }
    for creator in ["create_channel", "upload", "add_member", "channel_history"] {
        let operation = operations.iter().find(|o| o.id == creator).unwrap();
        let item = &document["paths"][&operation.path][operation.method.as_str().to_lowercase()];
        let linked = item["responses"].as_object().unwrap().values().any(|r| r["links"].is_object());
        assert!(linked, "{operation} links to nothing");
    }
    assert!(links > 30, "only {links} links");
}

/// Every `$ref` names a component the document has.
fn assert_references_resolve(document: &Value) {
    let mut references = Vec::new();
    collect_references(document, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {reference}"));
        assert!(pointer.starts_with("/components/"), "$ref outside the components: {reference}");
        assert!(document.pointer(pointer).is_some(), "$ref to nothing: {reference}");
    }
}

fn collect_references(value: &Value, references: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                references.push(reference.clone());
            }
            map.values().for_each(|v| collect_references(v, references));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, references)),
        _ => {}
    }
}

/// The schema itself, or the component it refers to.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => document.pointer(reference.trim_start_matches('#')).unwrap(),
        None => schema,
    }
}

/// What a request got back: its status and, for an error, its code and message.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    code: String,
    message: String,
}

/// Sends `method path` without a token or a body: harmless, since every handler checks the
/// token, then the body, before it changes anything.
async fn probe(base: &str, method: &Method, path: &str) -> Answer {
    let response =
        reqwest::Client::new().request(method.clone(), format!("{base}{path}")).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let text = |field: &str| body["error"][field].as_str().unwrap_or_default().to_owned();
    Answer { status, code: text("code"), message: text("message") }
}

/// The router's answer to a path it has no route for (`AppError::NotFound("route")`), as
/// opposed to a handler's 404 for something the path names.
fn is_route_fallback(answer: &Answer) -> bool {
    answer.status == StatusCode::NOT_FOUND
        && answer.code == "not_found"
        && answer.message == "route not found"
}

/// `/docs` redirects to Swagger UI's page, whose initializer loads the document; its scripts
/// come with a JavaScript type (responses say `nosniff`) and no Content-Security-Policy
/// forbids them.
async fn assert_swagger_ui_shows_the_document(base: &str) {
    let page = reqwest::get(format!("{base}{SWAGGER_UI}")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(!csp.contains("default-src") && !csp.contains("script-src"), "a CSP blocks Swagger UI: {csp}");
    assert!(header(&page, "content-type").starts_with("text/html"));
    let html = page.text().await.unwrap();
    for script in ["swagger-ui-bundle.js", "swagger-initializer.js"] {
        assert!(html.contains(script), "the page does not load {script}");
        let asset = reqwest::get(format!("{base}{SWAGGER_UI}/{script}")).await.unwrap();
        assert_eq!(asset.status(), StatusCode::OK, "{script}");
        assert!(header(&asset, "content-type").contains("javascript"), "{script}");
    }
    let initializer = reqwest::get(format!("{base}{SWAGGER_UI}/swagger-initializer.js")).await.unwrap();
    let initializer = initializer.text().await.unwrap();
    assert!(initializer.contains(DOCUMENT), "Swagger UI does not load {DOCUMENT}: {initializer}");
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn is_constant(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase()) && !name.contains(|c: char| c.is_ascii_lowercase())
}

/// The route registrations of a source file: `.route(`, `.route_service(` and
/// `.nest_service(` calls whose first argument is a string literal or a constant, with that
/// argument (method calls of other things named `route` take other arguments).
fn route_registrations(source: &str) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for method in ["route", "route_service", "nest_service"] {
        let call = format!(".{method}(");
        for (at, _) in source.match_indices(&call) {
            let rest = source[at + call.len()..].trim_start();
            let argument = match rest.strip_prefix('"') {
                Some(literal) => literal.split('"').next().map(|path| format!("\"{path}\"")),
                None => Some(rest.chars().take_while(|c| c.is_alphanumeric() || "_:".contains(*c)).collect())
                    .filter(|name: &String| name.rsplit("::").next().is_some_and(is_constant)),
            };
            found.extend(argument.map(|argument| (method, argument)));
        }
    }
    found
}
