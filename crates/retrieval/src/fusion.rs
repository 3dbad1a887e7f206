//! Reciprocal rank fusion of the BM25 and the cosine ranking.

use std::cmp::Ordering;
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

/// How many places lower a policy section counts in each ranking, against
/// an FAQ entry. An FAQ entry answers one question; a policy section is
/// reference text whose many words match many questions. When both match
/// about as well, the entry written for the question goes first; a section
/// first in both rankings still wins (against an FAQ entry second in both
/// it ties, and closeness decides). Tried 1 to 5 places, and scaling the
/// fused score by 0.9 to 0.99 instead, on both shops' gate questions in
/// both languages (`docs/quality.md`): every setting put the expected
/// passage first as often or more often in all four; two places or more
/// gain a little more but let an entry second in both rankings beat a
/// section first in both, which lost the demo shop a case whose fact only
/// the section holds.
pub(crate) const POLICY_PLACES: usize = 1;

/// Reciprocal rank fusion of two rankings (each best first): every document
/// with its place in each, sorted by the summed `1 / (k + rank)`, ties
/// broken as [`Standing::best_first`] says with the cosine as closeness,
/// then by index order, so results are stable.
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
    let standing = |b: Option<Ranked>, c: Option<Ranked>| {
        Standing::new(fused_score(b, c, 0), c.map_or(f32::NEG_INFINITY, |c| c.score), b, c)
    };
    fused.sort_by(|(ax, bx, cx), (ay, by, cy)| {
        standing(*bx, *cx).best_first(&standing(*by, *cy)).then(ax.cmp(ay))
    });
    fused
}

/// The reciprocal rank fusion score of a document's places, each counted
/// `places_lower` places lower.
pub(crate) fn fused_score(
    bm25: Option<Ranked>,
    cosine: Option<Ranked>,
    places_lower: usize,
) -> f32 {
    [bm25, cosine].into_iter().flatten().map(|r| rrf(r.rank + places_lower)).sum()
}

/// What orders a candidate among the others.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Standing {
    pub score: f32,
    /// How close the passage is to the question, for ties: with two lists,
    /// first and second place in one against second and first in the other
    /// tie exactly, which is common, and a measure decides better than a
    /// place, which is only an order.
    pub closeness: f32,
    pub best_place: usize,
}

impl Standing {
    pub(crate) fn new(
        score: f32,
        closeness: f32,
        bm25: Option<Ranked>,
        cosine: Option<Ranked>,
    ) -> Standing {
        let best_place = [bm25, cosine].into_iter().flatten().map(|r| r.rank).min();
        Standing { score, closeness, best_place: best_place.unwrap_or(usize::MAX) }
    }

    /// Best first: the higher score, then the closer, then the better
    /// single place.
    pub(crate) fn best_first(&self, other: &Standing) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(other.closeness.total_cmp(&self.closeness))
            .then(self.best_place.cmp(&other.best_place))
    }
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
    fn a_tie_goes_to_the_higher_cosine() {
        // 1 and 2 swap places between the rankings: equal fused scores.
        let bm25 = [(9.0, doc(1)), (5.0, doc(2))];
        let cosine = [(0.8, doc(2)), (0.6, doc(1))];
        let order: Vec<u32> = fuse(&bm25, &cosine).iter().map(|(a, _, _)| a.doc_id).collect();
        assert_eq!(order, [2, 1]);
        let cosine = [(0.6, doc(2)), (0.6, doc(1))];
        let order: Vec<u32> = fuse(&bm25, &cosine).iter().map(|(a, _, _)| a.doc_id).collect();
        assert_eq!(order, [1, 2], "equal cosines: the better single place, then index order");
    }

    #[test]
    fn a_policy_section_first_in_both_rankings_ties_with_an_entry_second_in_both() {
        let at = |rank| Some(Ranked { score: 0.0, rank });
        let section = fused_score(at(1), at(1), POLICY_PLACES);
        assert_eq!(section, fused_score(at(2), at(2), 0));
        assert!(section > fused_score(at(2), at(3), 0), "a clearly better section wins");
        assert!(fused_score(at(1), at(2), POLICY_PLACES) < fused_score(at(2), at(1), 0));
    }

    #[test]
    fn fusion_of_one_ranking_keeps_its_order() {
        let bm25 = [(3.0, doc(7)), (2.0, doc(5)), (1.0, doc(6))];
        let order: Vec<u32> = fuse(&bm25, &[]).iter().map(|(a, _, _)| a.doc_id).collect();
        assert_eq!(order, [7, 5, 6]);
    }
}
