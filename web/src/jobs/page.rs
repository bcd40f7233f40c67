//! One page of an owner's jobs, newest first, for the gallery and `GET /api/jobs`. The owner
//! index keys (`owners/{owner}/{job_id}`) are listed (one cheap listing, no record read), and
//! job ids are UUIDv7, so their order is the order the jobs were created: a page sorts the ids,
//! skips to the cursor and reads only the records it shows. A child module of
//! [`crate::jobs`] so it reads through the book's cache.
//!
//! The cursor is opaque to clients: the URL-safe base64 of the last id of the previous page
//! (`j1:` and the id). Anything else, or an id that is not an id, is [`PageError::InvalidCursor`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use darkroom_core::store::StoreError;
use darkroom_protocol::keys;
use darkroom_protocol::lifecycle::{JobRecord, JobState};

use super::JobBook;

/// Jobs on a page unless the client asks for another number.
pub const DEFAULT_LIMIT: usize = 24;
/// Most jobs on one page.
pub const MAX_LIMIT: usize = 100;

const CURSOR_PREFIX: &str = "j1:";

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("the `cursor` is not one this server gave out; start again from the first page (no cursor) and follow `next_cursor`")]
    InvalidCursor,
    #[error("`limit` must be a whole number from 1 to {MAX_LIMIT}")]
    InvalidLimit,
    #[error("no job state is called `{0}`; use a state the jobs show, such as queued, processing, done or failed")]
    InvalidState(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a page starts: after the job a cursor names (ids sort as the jobs were created).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    pub fn after(id: &str) -> Cursor {
        Cursor(id.to_string())
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{}", self.0))
    }

    pub fn decode(text: &str) -> Result<Cursor, PageError> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| PageError::InvalidCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| PageError::InvalidCursor)?;
        let id = text.strip_prefix(CURSOR_PREFIX).filter(|id| keys::is_valid_id(id)).ok_or(PageError::InvalidCursor)?;
        Ok(Cursor(id.to_string()))
    }
}

/// `limit` as a client gave it (absent: [`DEFAULT_LIMIT`]).
pub fn limit(asked: Option<&str>) -> Result<usize, PageError> {
    match asked {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(text) => text.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or(PageError::InvalidLimit),
    }
}

/// One page of jobs.
#[derive(Debug)]
pub struct Page {
    pub jobs: Vec<JobRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
    /// The owner's jobs in all (from the index listing, no record read).
    pub total: usize,
}

/// A page as a request's query asks for it (`limit`, `cursor`, `state`).
pub async fn from_query(
    book: &JobBook,
    owner: &str,
    q: &std::collections::HashMap<String, String>,
) -> Result<Page, PageError> {
    let limit = limit(q.get("limit").map(String::as_str))?;
    let cursor = q.get("cursor").filter(|c| !c.is_empty()).map(|c| Cursor::decode(c)).transpose()?;
    let state = match q.get("state").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            serde_json::from_value::<JobState>(serde_json::Value::String(s.clone()))
                .map_err(|_| PageError::InvalidState(s.chars().take(40).collect()))?,
        ),
        None => None,
    };
    Ok(book.page(owner, cursor.as_ref(), limit, state).await?)
}

impl PageError {
    /// The API's error code for a refused page request (`400`; answered through
    /// [`ApiError::BadPage`](crate::error::ApiError::BadPage)).
    pub fn code(&self) -> &'static str {
        match self {
            PageError::InvalidCursor => "invalid_cursor",
            PageError::InvalidLimit => "invalid_limit",
            PageError::InvalidState(_) => "invalid_state",
            PageError::Store(_) => "storage_unavailable",
        }
    }
}

impl JobBook {
    /// Up to `limit` of `owner`'s jobs older than `after` (all of them from the newest when
    /// `None`), newest first, only those in `state` if given. Reads the records it returns
    /// (and, with a state filter, those it skips), never the rest.
    pub async fn page(
        &self,
        owner: &str,
        after: Option<&Cursor>,
        limit: usize,
        state: Option<JobState>,
    ) -> Result<Page, StoreError> {
        let prefix = keys::owner_prefix(owner);
        let mut ids: Vec<String> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
            .collect();
        let total = ids.len();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let start = match after {
            Some(Cursor(id)) => ids.partition_point(|i| i.as_str() >= id.as_str()),
            None => 0,
        };
        let mut jobs: Vec<JobRecord> = Vec::with_capacity(limit);
        let mut next = None;
        for id in &ids[start..] {
            if let Some(last) = jobs.last().filter(|_| jobs.len() == limit) {
                // More ids remain: the next page starts after the last job this one shows.
                next = Some(Cursor::after(&last.id));
                break;
            }
            // An index entry whose record is gone (a delete half done) shows nothing.
            let Some(rec) = self.get(id).await? else { continue };
            if rec.owner != owner || state.is_some_and(|s| rec.state != s) {
                continue;
            }
            jobs.push(rec);
        }
        Ok(Page { jobs, next, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::{counting_store, job};
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn a_page_reads_only_its_own_records_newest_first_without_gaps() {
        let store = counting_store();
        // A cache of one record: nearly every read goes to the store and is counted.
        let book = JobBook::with_cache(store.clone(), 1);
        for n in 0..30 {
            book.create(&job(n, "o")).await.unwrap();
        }
        book.create(&job(99, "someone-else")).await.unwrap();
        let before = store.gets.load(Ordering::SeqCst);
        let first = book.page("o", None, 24, None).await.unwrap();
        assert!(store.gets.load(Ordering::SeqCst) - before <= 24, "a page of 24 reads at most 24 records");
        assert_eq!(first.total, 30);
        let second = book.page("o", first.next.as_ref(), 24, None).await.unwrap();
        assert!(second.next.is_none(), "the last page has no cursor");
        let ids: Vec<_> = first.jobs.iter().chain(&second.jobs).map(|j| j.id.clone()).collect();
        let expected: Vec<_> = (0..30).rev().map(|n| format!("job{n:05}")).collect();
        assert_eq!((first.jobs.len(), second.jobs.len()), (24, 6));
        assert_eq!(ids, expected, "newest first, no duplicate, no gap");
        let done = book.page("o", None, 24, Some(JobState::Done)).await.unwrap();
        assert!(done.jobs.is_empty() && done.next.is_none());
    }

    #[test]
    fn a_cursor_survives_its_round_trip_and_nothing_else_is_one() {
        let c = Cursor::after("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "abc", "!!!", &URL_SAFE_NO_PAD.encode("j1:../x"), &URL_SAFE_NO_PAD.encode("x1:abc")] {
            assert!(matches!(Cursor::decode(bad), Err(PageError::InvalidCursor)), "{bad}");
        }
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "ten"] {
            assert!(matches!(limit(Some(bad)), Err(PageError::InvalidLimit)), "{bad}");
        }
    }
}
