//! The digest cache's persistent file, which is also its in-memory form: a [`Map`] of one scope's
//! entries is the file image itself, a hash table over records in key order, so loading costs a
//! read and a checksum and no work per entry. Every lookup bounds-checks and compares the stored
//! name, so a damaged or foreign file gives misses, never a wrong entry.

use super::{Entry, Stamp};

/// Persistent file format.
const MAGIC: &[u8; 8] = b"ISDIGEST";
const VERSION: u32 = 2;

/// Entries of one scope, keyed by path relative to the scope: a read-only view of a persistent
/// file image (see [`Map::build`] for the layout). Lookups bounds-check everything and compare
/// the stored name, so even a damaged image can only produce misses, never a wrong entry.
#[derive(Default)]
pub(crate) struct Map {
    buf: Vec<u8>,
    count: usize,
    names_at: usize,
    names_len: usize,
    records_at: usize,
    table_at: usize,
    /// Number of table cells: zero or a power of two greater than `count`.
    cells: usize,
}

/// Bytes of one record: name offset and length (u32 each), dev, ino, size, mtime, ctime (8 each),
/// sha256.
const RECORD: usize = 8 + 5 * 8 + 32;
/// A free table cell.
const EMPTY: u32 = u32::MAX;

/// FxHash-style hash of a key, 8 bytes at a time, with murmur3's finalizer so that every input
/// bit reaches the low bits used as table index.
fn key_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut h = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h = (h ^ (h >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

pub(crate) fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().unwrap())
}

pub(crate) fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().unwrap())
}

/// Checksum of the persistent file: detects truncation and corruption (not tampering: whoever
/// can write the cache folder can write the sources). Four independent multiply-rotate lanes;
/// each step is a bijection of the lane, so any single changed 8-byte word changes the result.
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(31);
    let mut lanes = [
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane = step(
                *lane,
                u64::from_le_bytes(block[i * 8..i * 8 + 8].try_into().unwrap()),
            );
        }
    }
    let mut h = step(0, bytes.len() as u64);
    for lane in lanes {
        h = step(h, lane);
    }
    for b in blocks.remainder() {
        h = step(h, u64::from(*b));
    }
    h ^ (h >> 32)
}

impl Map {
    /// Build the image of a scope's entries (for equal keys the last one wins):
    ///
    /// ```text
    /// "ISDIGEST" version:u32 scope_len:u32 scope count:u64 names_len:u64 cells:u64
    /// names  count × record (see RECORD)  cells × u32 (record index or EMPTY)  checksum:u64
    /// ```
    /// All integers little-endian; the table is open addressing with linear probing on
    /// [`key_hash`]. Records and names are in key order, so that lookups in path order (a tree
    /// snapshot's replay) read the image front to back instead of at random.
    pub(crate) fn build<'k>(scope: &[u8], entries: impl IntoIterator<Item = (&'k str, Entry)>) -> Map {
        let given: Vec<(&str, Entry)> = entries.into_iter().collect();
        // Key order (small elements: the sort moves keys and indices, not entries); of equal
        // keys, the last one given ends its run (the index breaks ties).
        let mut order: Vec<(&str, usize)> = given.iter().enumerate().map(|(i, (k, _))| (*k, i)).collect();
        if !order.windows(2).all(|w| w[0].0 < w[1].0) {
            order.sort_unstable();
        }
        let mut unique: Vec<(&str, usize)> = Vec::with_capacity(order.len());
        for (key, i) in order {
            match unique.last_mut() {
                Some(last) if last.0 == key => last.1 = i,
                _ => unique.push((key, i)),
            }
        }
        let mut names = String::with_capacity(unique.iter().map(|(k, _)| k.len()).sum());
        let mut records: Vec<(u32, u32, Entry)> = Vec::with_capacity(unique.len());
        // At most half full: the smallest power of two (at least 16) holding twice the keys.
        let mut table: Vec<u32> = vec![EMPTY; (unique.len() * 2).next_power_of_two().max(16)];
        let mask = table.len() - 1;
        for (key, i) in unique {
            // The keys are distinct: the first free cell.
            let mut cell = key_hash(key.as_bytes()) as usize & mask;
            while table[cell] != EMPTY {
                cell = (cell + 1) & mask;
            }
            table[cell] = records.len() as u32;
            records.push((names.len() as u32, key.len() as u32, given[i].1));
            names.push_str(key);
        }
        let mut buf =
            Vec::with_capacity(48 + scope.len() + names.len() + records.len() * RECORD + table.len() * 4);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&(scope.len() as u32).to_le_bytes());
        buf.extend_from_slice(scope);
        buf.extend_from_slice(&(records.len() as u64).to_le_bytes());
        buf.extend_from_slice(&(names.len() as u64).to_le_bytes());
        buf.extend_from_slice(&(table.len() as u64).to_le_bytes());
        buf.extend_from_slice(names.as_bytes());
        for (off, len, e) in &records {
            buf.extend_from_slice(&off.to_le_bytes());
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&e.stamp.dev.to_le_bytes());
            buf.extend_from_slice(&e.stamp.ino.to_le_bytes());
            buf.extend_from_slice(&e.stamp.size.to_le_bytes());
            buf.extend_from_slice(&e.stamp.mtime_ns.to_le_bytes());
            buf.extend_from_slice(&e.stamp.ctime_ns.to_le_bytes());
            buf.extend_from_slice(&e.sha256);
        }
        for cell in &table {
            buf.extend_from_slice(&cell.to_le_bytes());
        }
        let sum = checksum(&buf);
        buf.extend_from_slice(&sum.to_le_bytes());
        Map::parse(buf, scope).expect("a freshly built image is valid")
    }

    /// Check an image: checksum, version, scope and section sizes. `None` if invalid.
    pub(crate) fn parse(buf: Vec<u8>, scope: &[u8]) -> Option<Map> {
        let body = buf.len().checked_sub(8)?;
        if checksum(&buf[..body]).to_le_bytes() != buf[body..] {
            return None;
        }
        let header = MAGIC.len() + 8;
        if body < header || &buf[..8] != MAGIC || u32_at(&buf, 8) != VERSION {
            return None;
        }
        let scope_len = u32_at(&buf, 12) as usize;
        let fields = header.checked_add(scope_len)?;
        if body < fields.checked_add(24)? || &buf[header..fields] != scope {
            return None;
        }
        let count = usize::try_from(u64_at(&buf, fields)).ok()?;
        let names_len = usize::try_from(u64_at(&buf, fields + 8)).ok()?;
        let cells = usize::try_from(u64_at(&buf, fields + 16)).ok()?;
        let names_at = fields + 24;
        let records_at = names_at.checked_add(names_len)?;
        let table_at = records_at.checked_add(count.checked_mul(RECORD)?)?;
        if table_at.checked_add(cells.checked_mul(4)?)? != body
            || !cells.is_power_of_two()
            || cells <= count
            || count >= EMPTY as usize
        {
            return None;
        }
        Some(Map {
            buf,
            count,
            names_at,
            names_len,
            records_at,
            table_at,
            cells,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The file image.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Name bytes and entry of record `i` (`None` if the record points outside the names).
    fn record(&self, i: usize) -> Option<(&[u8], Entry)> {
        let at = self.records_at + i * RECORD;
        let r = &self.buf[at..at + RECORD];
        let (off, len) = (u32_at(r, 0) as usize, u32_at(r, 4) as usize);
        let name = self.buf[self.names_at..self.names_at + self.names_len].get(off..off.checked_add(len)?)?;
        let stamp = Stamp {
            dev: u64_at(r, 8),
            ino: u64_at(r, 16),
            size: u64_at(r, 24),
            mtime_ns: u64_at(r, 32) as i64,
            ctime_ns: u64_at(r, 40) as i64,
        };
        Some((
            name,
            Entry {
                stamp,
                sha256: r[48..80].try_into().unwrap(),
            },
        ))
    }

    pub(crate) fn get(&self, key: &str) -> Option<Entry> {
        if self.cells == 0 {
            return None;
        }
        let mask = self.cells - 1;
        let mut cell = key_hash(key.as_bytes()) as usize & mask;
        // At most `cells` probes, whatever the table holds.
        for _ in 0..self.cells {
            let r = u32_at(&self.buf, self.table_at + cell * 4);
            if r == EMPTY {
                return None;
            }
            if (r as usize) < self.count {
                if let Some((name, entry)) = self.record(r as usize) {
                    if name == key.as_bytes() {
                        return Some(entry);
                    }
                }
            }
            cell = (cell + 1) & mask;
        }
        None
    }

    /// The index of the first record whose name is not less than `key` when the records are in
    /// key order (as [`Map::build`] writes them); for any other image, some index. Only a hint for
    /// [`Map::get_near`].
    pub(crate) fn seek(&self, key: &str) -> usize {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.record(mid) {
                Some((name, _)) if name < key.as_bytes() => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// [`Map::get`] for keys looked up in increasing order: first the next few records from `*at`
    /// (read front to back, where the next key usually is), then the table. The answer is
    /// [`Map::get`]'s whatever `*at` is.
    pub(crate) fn get_near(&self, key: &str, at: &mut usize) -> Option<Entry> {
        // A few records may belong to files deleted since the image was built.
        for _ in 0..8 {
            let Some((name, entry)) = (*at < self.count).then(|| self.record(*at)).flatten() else {
                break;
            };
            match name.cmp(key.as_bytes()) {
                std::cmp::Ordering::Less => *at += 1,
                std::cmp::Ordering::Equal => {
                    *at += 1;
                    return Some(entry);
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        self.get(key)
    }

    /// The entries (records whose name is not valid UTF-8 are skipped).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, Entry)> {
        (0..self.count).filter_map(|i| {
            let (name, entry) = self.record(i)?;
            Some((std::str::from_utf8(name).ok()?, entry))
        })
    }
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for Map {
    fn eq(&self, other: &Map) -> bool {
        self.len() == other.len() && self.iter().all(|(k, e)| other.get(k) == Some(e))
    }
}
