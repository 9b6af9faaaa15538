//! A local S3-compatible server (moto's, from PyPI) for the tests of the S3 upload store, with
//! the few bucket reads a test needs: the keys under a prefix, and the multipart uploads left
//! open.

use super::process::{ChildProcess, ProcessError, find_executable, free_port_on};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub struct LocalS3 {
    pub host: Ipv4Addr,
    pub port: u16,
    pub process: ChildProcess,
    http: reqwest::Client,
}

impl LocalS3 {
    /// Starts the server on `host` (a free port), its log in `dir`, and waits until it answers.
    pub async fn start(dir: &Path, host: Ipv4Addr) -> Result<Self, ProcessError> {
        let binary = find_executable("moto_server", "CHAT_MOTO_SERVER", &[])?;
        let port = free_port_on(host);
        let mut command = Command::new(binary);
        command.args(["-H", &host.to_string(), "-p", &port.to_string()]);
        let log = dir.join("s3.log");
        let process = ChildProcess::spawn("s3", command, &log)?;
        let s3 = Self { host, port, process, http: reqwest::Client::new() };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            let answered = s3.http.get(format!("{}/moto-api/", s3.endpoint())).send().await;
            if answered.is_ok_and(|r| r.status().is_success()) {
                return Ok(s3);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ProcessError::NotReady("s3".into(), log))
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// What a client of this server needs in its environment (`object_store`'s `AWS_*`).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint().as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "local"),
            ("AWS_SECRET_ACCESS_KEY", "local-secret"),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    pub async fn create_bucket(&self, bucket: &str) -> Result<(), ProcessError> {
        let response = self.http.put(format!("{}/{bucket}", self.endpoint())).send().await;
        match response {
            Ok(r) if r.status().is_success() => Ok(()),
            other => Err(ProcessError::Setup(format!("creating bucket {bucket}: {other:?}"))),
        }
    }

    /// The keys of `bucket` under `prefix` (up to 1,000).
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let url = format!("{}/{bucket}?list-type=2&prefix={prefix}", self.endpoint());
        elements(&self.get(&url).await, "Key")
    }

    /// Multipart uploads of `bucket` started and neither completed nor aborted.
    pub async fn open_multipart_uploads(&self, bucket: &str) -> usize {
        let url = format!("{}/{bucket}?uploads", self.endpoint());
        elements(&self.get(&url).await, "UploadId").len()
    }

    async fn get(&self, url: &str) -> String {
        let response = self.http.get(url).send().await.expect("the S3 server answers");
        assert!(response.status().is_success(), "GET {url}: {}", response.status());
        response.text().await.expect("a listing")
    }
}

/// The texts of the `<name>` elements of an S3 XML answer (flat, unescaped: keys here are
/// uuids).
fn elements(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(text, _)| text.to_owned()))
        .collect()
}
