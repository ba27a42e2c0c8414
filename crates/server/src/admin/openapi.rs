//! The OpenAPI document of the admin API, kept as a static file beside the code and checked
//! against the mounted routes by a test, so the two cannot drift apart.

/// The document as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
pub async fn document() -> impl axum::response::IntoResponse {
    ([(http::header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_mounted_route_is_described_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut described = Vec::new();
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                assert!(op["summary"].is_string(), "{method} {path} has no summary");
                assert!(
                    op["responses"].is_object(),
                    "{method} {path} has no responses"
                );
                described.push((method.to_uppercase(), path.clone()));
            }
        }
        let mut mounted: Vec<(String, String)> = super::super::mounted_routes()
            .into_iter()
            .map(|(m, p)| (m.to_string(), format!("/admin/v1{p}")))
            .collect();
        mounted.push((
            "GET".into(),
            format!("/admin/v1{}", super::super::OPENAPI_PATH),
        ));
        described.sort();
        mounted.sort();
        assert_eq!(described, mounted);
    }
}
