//! Reciprocal rank fusion of the BM25 and the cosine ranking.

use std::collections::HashMap;

use tantivy::DocAddress;

use crate::Ranked;

/// The `k` of reciprocal rank fusion, `1 / (k + rank)`: the usual 60, which
/// keeps one list's first place from outweighing agreement between both.
const RRF_K: f32 = 60.0;

/// One place's share of a fused score.
pub(crate) fn rrf(rank: usize) -> f32 {
    1.0 / (RRF_K + rank as f32)
}

/// Reciprocal rank fusion of two rankings (each best first): every document
/// with its place in each, sorted by the summed `1 / (k + rank)`. Ties go to
/// the better single place, then to index order, so results are stable.
pub(crate) fn fuse(
    bm25: &[(f32, DocAddress)],
    cosine: &[(f32, DocAddress)],
) -> Vec<(DocAddress, Option<Ranked>, Option<Ranked>)> {
    let mut places: HashMap<DocAddress, (Option<Ranked>, Option<Ranked>)> = HashMap::new();
    for (i, &(score, address)) in bm25.iter().enumerate() {
        places.entry(address).or_default().0 = Some(Ranked { score, rank: i + 1 });
    }
    for (i, &(score, address)) in cosine.iter().enumerate() {
        places.entry(address).or_default().1 = Some(Ranked { score, rank: i + 1 });
    }
    let mut fused: Vec<(DocAddress, Option<Ranked>, Option<Ranked>)> =
        places.into_iter().map(|(address, (b, c))| (address, b, c)).collect();
    let key = |(address, b, c): &(DocAddress, Option<Ranked>, Option<Ranked>)| {
        let ranks = [b, c].into_iter().flatten().map(|r| r.rank);
        let score: f32 = ranks.clone().map(rrf).sum();
        (score, ranks.min().unwrap_or(usize::MAX), *address)
    };
    fused.sort_by(|x, y| {
        let (sx, bx, ax) = key(x);
        let (sy, by, ay) = key(y);
        sy.total_cmp(&sx).then(bx.cmp(&by)).then(ax.cmp(&ay))
    });
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: u32) -> DocAddress {
        DocAddress::new(0, n)
    }

    #[test]
    fn fusion_rewards_agreement_between_rankings() {
        // BM25: 1, 2, 3; cosine: 3, 4, 2.
        let bm25 = [(9.0, doc(1)), (5.0, doc(2)), (1.0, doc(3))];
        let cosine = [(0.9, doc(3)), (0.8, doc(4)), (0.7, doc(2))];
        let fused = fuse(&bm25, &cosine);
        let order: Vec<u32> = fused.iter().map(|(a, _, _)| a.doc_id).collect();
        // 2: 1/62 + 1/63; 3: 1/63 + 1/61; 1: 1/61; 4: 1/62.
        assert_eq!(order, [3, 2, 1, 4]);
        let (_, b, c) = fused[0];
        assert_eq!(b, Some(Ranked { score: 1.0, rank: 3 }));
        assert_eq!(c, Some(Ranked { score: 0.9, rank: 1 }));
        let (_, b, c) = fused[3];
        assert_eq!((b, c.map(|c| c.rank)), (None, Some(2)));
    }

    #[test]
    fn fusion_of_one_ranking_keeps_its_order() {
        let bm25 = [(3.0, doc(7)), (2.0, doc(5)), (1.0, doc(6))];
        let order: Vec<u32> = fuse(&bm25, &[]).iter().map(|(a, _, _)| a.doc_id).collect();
        assert_eq!(order, [7, 5, 6]);
    }
}
