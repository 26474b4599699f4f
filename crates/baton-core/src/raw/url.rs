//! Backend URLs: the parts every backend's URL parser shares.

/// The URL with the password of its `user:password@` part hidden (`***`),
/// for logs and error messages; a URL without one is answered as is.
///
/// ```
/// use baton_core::raw::url::redact;
/// assert_eq!(redact("postgres://baton:s3cret@db:5432/baton"), "postgres://baton:***@db:5432/baton");
/// assert_eq!(redact("redis://:pw@h:6379/2?prefix=p"), "redis://:***@h:6379/2?prefix=p");
/// assert_eq!(redact("redis+cluster://u:pw@h1:1,h2:2"), "redis+cluster://u:***@h1:1,h2:2");
/// assert_eq!(redact("postgres://baton@db/baton"), "postgres://baton@db/baton");
/// assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
/// ```
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// The `key=value` options of a URL's query (`?a=1&b=2`), in order; a key
/// without `=` has an empty value.
///
/// ```
/// use baton_core::raw::url::options;
/// let o: Vec<_> = options("sqlite://x.db?partitions=4&synchronous").collect();
/// assert_eq!(o, [("partitions", "4"), ("synchronous", "")]);
/// ```
pub fn options(url: &str) -> impl Iterator<Item = (&str, &str)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// The `partitions=N` option of a backend URL, shared by every backend.
///
/// ```
/// use baton_core::raw::url::partitions_option;
/// assert_eq!(partitions_option("32").unwrap().get(), 32);
/// assert!(partitions_option("0").is_err());
/// assert!(partitions_option("many").is_err());
/// ```
pub fn partitions_option(v: &str) -> crate::Result<crate::PartitionCount> {
    let n: u16 = v.parse().map_err(|_| {
        crate::EngineError::invalid("partitions", v, "must be a number between 1 and 1024")
    })?;
    crate::PartitionCount::new(n)
}
