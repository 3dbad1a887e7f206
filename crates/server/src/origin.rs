//! The origin a request was made to, for the same-origin checks of the chat
//! socket and the staff API, and for the session cookie's `Secure` flag.
//!
//! The server itself speaks plain HTTP; where there is TLS, it ends at a
//! proxy in front, which says so with `X-Forwarded-Proto` (or `Forwarded:
//! proto=`). Taking that header on trust is safe for both uses: a page on
//! another site cannot add it to a request (it is not a CORS-safelisted
//! header), and a client that sends it itself only changes its own cookie.
//! The scheme is compared too, so that a plain-http page cannot act for the
//! https site of the same host.

use axum::http::{header, HeaderMap};

/// Whether the request reached the server over HTTPS, as far as it can know.
pub fn is_https(headers: &HeaderMap) -> bool {
    forwarded_proto(headers).is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The scheme the client used: the proxy's word for it, else `http`.
fn forwarded_proto(headers: &HeaderMap) -> Option<String> {
    let first = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
    };
    if let Some(proto) = first(header::HeaderName::from_static("x-forwarded-proto")) {
        return Some(proto);
    }
    // RFC 7239: `Forwarded: for=…;proto=https, …`; the first element is the
    // proxy nearest the client.
    first(header::FORWARDED)?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("proto"))
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// Whether `origin` (an `Origin` header's value) is this server itself:
/// same scheme, same host and port.
pub fn is_own_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let scheme = if is_https(headers) { "https" } else { "http" };
    let Some((origin_scheme, origin_host)) = origin.trim_end_matches('/').split_once("://") else {
        return false;
    };
    origin_scheme.eq_ignore_ascii_case(scheme) && origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_scheme_must_match_as_well_as_the_host() {
        let plain = headers(&[("host", "shop.example:8080")]);
        assert!(is_own_origin("http://shop.example:8080", &plain));
        assert!(!is_own_origin("https://shop.example:8080", &plain));
        assert!(!is_own_origin("http://other.example:8080", &plain));
        assert!(!is_own_origin("shop.example:8080", &plain));
    }

    #[test]
    fn a_proxy_that_ended_tls_makes_the_origin_https() {
        let proxied = headers(&[("host", "shop.example"), ("x-forwarded-proto", "https")]);
        assert!(is_https(&proxied));
        assert!(is_own_origin("https://shop.example", &proxied));
        assert!(!is_own_origin("http://shop.example", &proxied));
        let standard =
            headers(&[("host", "shop.example"), ("forwarded", "for=192.0.2.1;proto=https")]);
        assert!(is_https(&standard));
        assert!(!is_https(&headers(&[("host", "shop.example")])));
    }
}
