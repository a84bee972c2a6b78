//! Names of the API's metrics, each checked against the catalog
//! (`tgstack::catalog::gateway::API`) that the validator reads too.

pub const REQUESTS: &str = "tg_api_http_requests_total";
pub const REQUEST_DURATION: &str = "tg_api_http_request_duration_seconds";
pub const AUTH_FAILURES: &str = "tg_api_auth_failures_total";
pub const DEPENDENCY_UP: &str = "tg_gateway_dependency_up";
pub const CACHE_HITS: &str = "tg_api_cache_hits_total";
pub const CACHE_MISSES: &str = "tg_api_cache_misses_total";

#[cfg(test)]
mod tests {
    use tgstack::catalog::gateway::API;

    #[test]
    fn every_name_is_in_the_api_catalog_with_its_labels() {
        let used: &[(&str, &[&str])] = &[
            (super::REQUESTS, &["method", "route", "status"]),
            (super::REQUEST_DURATION, &["method", "route"]),
            (super::AUTH_FAILURES, &[]),
            (super::DEPENDENCY_UP, &["dependency"]),
            (super::CACHE_HITS, &[]),
            (super::CACHE_MISSES, &["reason"]),
        ];
        for (name, labels) in used {
            let metric = API
                .iter()
                .find(|m| m.name == *name)
                .unwrap_or_else(|| panic!("{name} is not in the API catalog"));
            assert_eq!(metric.labels, *labels, "labels of {name}");
        }
    }
}
