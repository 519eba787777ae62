//! `pedigree remote check`: does the configured store keep the promises the
//! protocol relies on? Each probe writes under `v1/probe/` and removes what it
//! wrote.
//!
//! - a second conditional create of one path is refused;
//! - 32 concurrent conditional creates of one path give exactly one winner, and
//!   the object holds the winner's bytes;
//! - a multipart upload is invisible until it completes;
//! - a blob comes back byte for byte, through the verified download.
//!
//! A store that ignores conditional writes would let two writers both "win" an
//! entry slot: it is reported as unsafe for publishing (reading stays safe, since
//! every read is verified).

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};

use super::store::{Created, RemoteStore};
use crate::store::Store;

/// One probe's verdict.
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Run every probe against `remote`, using `local` for the download check.
pub async fn run(remote: &RemoteStore, local: &Store) -> Vec<Probe> {
    let tag = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let mut out = Vec::new();
    let mut cleanup = Vec::new();

    // 1. A second conditional create is refused.
    let p = remote.probe_path(&format!("{tag}-create"));
    cleanup.push(p.clone());
    let first = remote.create(&p, Bytes::from_static(b"first")).await;
    let second = remote.create(&p, Bytes::from_static(b"second")).await;
    out.push(match (&first, &second) {
        (Ok(Created::New), Ok(Created::Exists)) => Probe {
            name: "conditional create",
            ok: true,
            detail: "a second create of the same path is refused".into(),
        },
        (Ok(_), Ok(Created::New)) => Probe {
            name: "conditional create",
            ok: false,
            detail: "a second create of the same path succeeded: the store ignores If-None-Match, so two writers could both win an entry".into(),
        },
        (Err(e), _) | (_, Err(e)) => Probe {
            name: "conditional create",
            ok: false,
            detail: e.to_string(),
        },
        _ => Probe {
            name: "conditional create",
            ok: false,
            detail: "the first create found an object already there".into(),
        },
    });
    if first.is_err() {
        // The store is unreachable or refuses us: the rest would say the same.
        return out;
    }

    // 2. 32 concurrent creates of one path: exactly one winner, whose bytes stay.
    let p = remote.probe_path(&format!("{tag}-race"));
    cleanup.push(p.clone());
    let racers = (0..32).map(|i| {
        let p = p.clone();
        async move {
            (
                i,
                remote
                    .create(&p, Bytes::from(format!("writer {i}").into_bytes()))
                    .await,
            )
        }
    });
    let results = futures::future::join_all(racers).await;
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(Created::New)))
        .map(|(i, _)| *i)
        .collect();
    let errors = results.iter().filter(|(_, r)| r.is_err()).count();
    let held = remote.get_small(&p, 1024).await.ok().flatten();
    out.push(Probe {
        name: "one winner of 32 concurrent creates",
        ok: winners.len() == 1
            && errors == 0
            && held.as_deref() == Some(format!("writer {}", winners[0]).as_bytes()),
        detail: format!(
            "{} winner{}, {errors} error{}{}",
            winners.len(),
            if winners.len() == 1 { "" } else { "s" },
            if errors == 1 { "" } else { "s" },
            match (&held, winners.first()) {
                (Some(b), Some(w)) if b.as_ref() == format!("writer {w}").as_bytes() =>
                    ", and the object holds the winner's bytes".to_owned(),
                _ => ", and the object does not hold the winner's bytes".to_owned(),
            }
        ),
    });

    // 3. A multipart upload is invisible until complete.
    let p = remote.probe_path(&format!("{tag}-multipart"));
    cleanup.push(p.clone());
    let multipart = async {
        let store = remote.store().map_err(|e| object_store::Error::Generic {
            store: "pedigree",
            source: Box::new(e),
        })?;
        let mut up = store.put_multipart(&p).await?;
        up.put_part(PutPayload::from(vec![7u8; 1024])).await?;
        let before = store.head(&p).await;
        up.complete().await?;
        let after = store.head(&p).await;
        Ok::<_, object_store::Error>((before.is_err(), after.map(|m| m.size).ok()))
    };
    out.push(
        match tokio::time::timeout(remote.timeout * 2, multipart).await {
            Ok(Ok((true, Some(1024)))) => Probe {
                name: "multipart upload",
                ok: true,
                detail: "invisible until complete, then whole".into(),
            },
            Ok(Ok((invisible, size))) => Probe {
                name: "multipart upload",
                ok: false,
                detail: format!(
                    "{}; after completion it has {}",
                    if invisible {
                        "invisible before completion"
                    } else {
                        "visible before it completed"
                    },
                    size.map_or("no object".to_owned(), |s| format!("{s} bytes"))
                ),
            },
            Ok(Err(e)) => Probe {
                name: "multipart upload",
                ok: false,
                detail: super::store::one_line(&e.to_string()),
            },
            Err(_) => Probe {
                name: "multipart upload",
                ok: false,
                detail: "no answer in time".into(),
            },
        },
    );

    // 4. A blob comes back byte for byte through the verified download.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let round = async {
        let stored = local.put_bytes(&data)?;
        remote.upload_blob(local, &stored.hash, stored.size).await?;
        cleanup.push(remote.blob_path(&stored.hash));
        let scratch = tempfile_store(local)?;
        let got = remote
            .download_blob(&scratch.0, &stored.hash, Some(stored.size))
            .await?;
        Ok::<_, super::RemoteError>(got.hash == stored.hash)
    };
    out.push(match round.await {
        Ok(true) => Probe {
            name: "verified download",
            ok: true,
            detail: "a 300 kB blob came back with its hash".into(),
        },
        Ok(false) => Probe {
            name: "verified download",
            ok: false,
            detail: "the blob came back different".into(),
        },
        Err(e) => Probe {
            name: "verified download",
            ok: false,
            detail: e.to_string(),
        },
    });

    for p in cleanup {
        let _ = remote.delete(&p).await;
    }
    out
}

/// A throwaway store beside `local`'s temp folder, so the round trip really
/// downloads (the local store already has the blob).
fn tempfile_store(local: &Store) -> Result<(Store, TempDir), super::RemoteError> {
    let dir = local
        .tmp_dir()
        .join(format!("remote-check-{}", std::process::id()));
    let store = Store::open(&dir)?;
    Ok((store, TempDir(dir)))
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = crate::store::remove_scratch(&self.0);
    }
}
