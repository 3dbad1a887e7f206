//! Staff: a tiny HTTP/1.1 client, and reading metrics.

use super::*;

pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    /// Names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl HttpResponse {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection (`Connection: close`).
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&Value>,
) -> HttpResponse {
    let body = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("reads the response");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(120), exchange)
        .await
        .unwrap_or_else(|_| panic!("no response to {method} {path}"));
    parse_response(&raw)
}

pub(crate) fn parse_response(raw: &[u8]) -> HttpResponse {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = std::str::from_utf8(&raw[..end]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse { status, headers, body }
}

pub(crate) fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
        data = &data[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A logged-in staff member.
pub(crate) struct StaffClient {
    pub(crate) addr: SocketAddr,
    pub(crate) token: String,
}

impl StaffClient {
    pub(crate) async fn login(addr: SocketAddr) -> StaffClient {
        let body = json!({ "name": STAFF_NAME, "password": STAFF_PASSWORD });
        let response = http(addr, "POST", "/api/login", &[], Some(&body)).await;
        assert_eq!(response.status, 200, "{}", response.text());
        let token = response.json()["token"].as_str().expect("a token").to_owned();
        StaffClient { addr, token }
    }

    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> HttpResponse {
        let auth = [("Authorization", format!("Bearer {}", self.token))];
        http(self.addr, method, path, &auth, body).await
    }

    pub(crate) async fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, None).await
    }

    /// `Value::Null` for no body.
    pub(crate) async fn post(&self, path: &str, body: Value) -> HttpResponse {
        self.request("POST", path, Some(&body).filter(|b| !b.is_null())).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> HttpResponse {
        self.request("PUT", path, Some(&body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> HttpResponse {
        self.request("DELETE", path, None).await
    }
}

/// The conversation ids of a `GET /api/conversations` response, in order.
pub(crate) fn listed_ids(response: &HttpResponse) -> Vec<String> {
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    let list = body["conversations"].as_array().unwrap_or_else(|| panic!("no list in {body}"));
    list.iter()
        .map(|summary| {
            // The summary's conversation fields are flattened into it; accept
            // them nested as well.
            let conversation = summary.get("conversation").unwrap_or(summary);
            conversation["id"].as_str().expect("a conversation id").to_owned()
        })
        .collect()
}

/// The sum of a metric's samples (optionally only those whose labels contain
/// `label`); `None` if it has none.
pub(crate) fn metric_sum(metrics: &str, name: &str, label: Option<&str>) -> Option<f64> {
    let mut sum = None;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (labels, value) = if let Some(rest) = rest.strip_prefix('{') {
            let Some(end) = rest.find('}') else { continue };
            (&rest[..end], &rest[end + 1..])
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue; // another metric whose name starts with this one
        };
        if label.is_some_and(|l| !labels.contains(l)) {
            continue;
        }
        let value: f64 = value.split_whitespace().next()?.parse().ok()?;
        sum = Some(sum.unwrap_or(0.0) + value);
    }
    sum
}

#[cfg(test)]
mod helpers {
    use super::*;

    #[test]
    fn digit_runs_find_phone_numbers_but_not_times() {
        assert_eq!(longest_digit_run("Call +44 20 7946 0321 today"), 12);
        assert_eq!(longest_digit_run("Mon-Fri 9:00-17:00, 2-3 business days"), 4);
        assert_eq!(longest_digit_run("no digits"), 0);
    }

    #[test]
    fn responses_parse_with_and_without_chunking() {
        let plain = parse_response(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\r\n{\"error\":\"x\"}",
        );
        assert_eq!(plain.status, 401);
        assert_eq!(plain.header("content-type"), Some("application/json"));
        assert_eq!(plain.json()["error"], "x");
        let chunked =
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        assert_eq!(chunked.text(), "abcde");
    }

    #[test]
    fn metrics_are_summed_by_name_and_label() {
        let text = "# HELP shopchat_answers_total Answers.\n\
                    shopchat_answers_total{outcome=\"answered\"} 2\n\
                    shopchat_answers_total{outcome=\"refused\"} 1\n\
                    shopchat_answers_total_created 5\n\
                    shopchat_queue_depth 0\n";
        assert_eq!(metric_sum(text, "shopchat_answers_total", None), Some(3.0));
        assert_eq!(metric_sum(text, "shopchat_answers_total", Some("refused")), Some(1.0));
        assert_eq!(metric_sum(text, "shopchat_queue_depth", None), Some(0.0));
        assert_eq!(metric_sum(text, "shopchat_open_sessions", None), None);
    }
}
