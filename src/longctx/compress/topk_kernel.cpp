// Fused CPU kernel for one top-k decoding step (RetrievalAttention-style, Liu, Chen et al. 2024).
//
// One query token per head attends to the static positions (the first n_sink and last n_recent)
// and to the `budget` best-scoring positions in between, with grouped-query attention: the G
// query heads of a KV head share its keys and values but select their own positions.
//
// Three passes, each parallelised over the CPU's intra-op threads (at::parallel_for):
//   1. scores:    s[b,h,g,l] = scale * (q[b,h,g] . k[b,h,l]) + bias[b,h,g,l], reading each key
//                 row once for the G query heads of its group;
//   2. selection: per (b,h,g) row, the budget-th largest middle score, exactly: a histogram of
//                 order-preserving integer keys spread over the row's range, then nth_element
//                 among the few keys of the bucket holding it (a comparison sort or quickselect
//                 over the whole row mispredicts a branch per element and costs several times
//                 more); kept = static or >= threshold, and never -inf (masked). Then the
//                 softmax numerators w = exp(s - row max) where kept, 0 elsewhere, and their sum;
//   3. output:    out[b,h,g] = sum_l w[b,h,g,l] v[b,h,l] / sum_l w[b,h,g,l], in one pass over
//                 the value rows, counting the rows some query head of the group kept (the bytes
//                 a sparse read would touch).
//
// Templated on G (1-8) and the head size (8-128); other shapes use the torch implementation.
// Semantics equal longctx's torch path (``kthvalue`` threshold, ties at it all kept), up to float
// rounding of the dot products.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace {

// Order-preserving map from float to uint32 (larger float, larger key); -0.0 maps like +0.0.
inline uint32_t order_key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if (u == 0x80000000u) u = 0;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

inline float from_order_key(uint32_t key) {
  const uint32_t u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// exp(x) for x <= 0 (Cephes' expf: range reduction by ln 2 and a degree-6 polynomial, about 1
// ulp), written so that loops over it vectorise; inputs below -87 (and -inf) give ~1e-38.
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

// The k-th largest of x[0..n) (1 <= k <= n), exactly: one histogram pass over the order keys
// spread across their range [lo, hi], then a selection among the few keys of the bucket holding
// it. `lo` and `hi` are the smallest and largest keys of x.
float kth_largest(const float* x, int64_t n, int64_t k, uint32_t lo, uint32_t hi,
                  std::vector<uint32_t>& cand) {
  const uint32_t range = hi - lo;
  int shift = 0;
  while ((range >> shift) >= 2048u) ++shift;
  uint32_t hist[2048] = {};
  for (int64_t i = 0; i < n; ++i) ++hist[(order_key(x[i]) - lo) >> shift];
  int64_t bucket = static_cast<int64_t>(range >> shift);
  int64_t above = 0;
  while (above + hist[bucket] < k) above += hist[bucket--];
  cand.clear();
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t key = order_key(x[i]);
    if (static_cast<int64_t>((key - lo) >> shift) == bucket) cand.push_back(key);
  }
  // The (k - above)-th largest of the bucket is at index size - (k - above) in ascending order.
  auto nth = cand.begin() + (static_cast<int64_t>(cand.size()) - (k - above));
  std::nth_element(cand.begin(), nth, cand.end());
  return from_order_key(*nth);
}

// Workspaces reused across calls (calls hold the GIL, so one runs at a time): fresh large
// buffers cost more to fault in than the arithmetic on them.
struct Workspace {
  std::vector<float> scores;  // (B, H, G, L) scores, then softmax numerators
  std::vector<uint8_t> keep;  // (B, H, G, L) kept flags

  // Grows both buffers to `size` entries (never shrinks) and returns the workspace.
  static Workspace& at_least(int64_t size) {
    static Workspace workspace;
    if (static_cast<int64_t>(workspace.scores.size()) < size) {
      workspace.scores.resize(size);
      workspace.keep.resize(size);
    }
    return workspace;
  }
};

#if defined(__AVX2__) && defined(__FMA__)
// The horizontal sums of eight vectors, as one vector: out[j] = sum of a[j]'s eight lanes.
inline __m256 sum_lanes8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]);
  const __m256 t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]);
  const __m256 t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1);  // a0..a3: lanes 0-3 and 4-7 halves
  const __m256 u1 = _mm256_hadd_ps(t2, t3);  // a4..a7
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}
#endif

// Scores of positions [l0, l1) of one KV head for its G query heads: s[g*L + l]. With AVX2,
// eight positions at a time: eight independent accumulators per query head, summed across lanes
// together (one reduction per eight dot products instead of one each).
template <int G, int D>
void score_block(const float* q, const float* kh, int64_t ks2, const float* bias, float scale,
                 int64_t L, int64_t l0, int64_t l1, float* s) {
  int64_t l = l0;
#if defined(__AVX2__) && defined(__FMA__)
  if constexpr (D % 8 == 0) {
    const __m256 vscale = _mm256_set1_ps(scale);
    for (; l + 8 <= l1; l += 8) {
      for (int g = 0; g < G; ++g) {
        __m256 acc[8];
        for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
        for (int c = 0; c < D; c += 8) {
          const __m256 qc = _mm256_loadu_ps(q + g * D + c);
          for (int j = 0; j < 8; ++j) {
            acc[j] = _mm256_fmadd_ps(qc, _mm256_loadu_ps(kh + (l + j) * ks2 + c), acc[j]);
          }
        }
        __m256 out = _mm256_mul_ps(sum_lanes8(acc), vscale);
        if (bias) out = _mm256_add_ps(out, _mm256_loadu_ps(bias + g * L + l));
        _mm256_storeu_ps(s + g * L + l, out);
      }
    }
  }
#endif
  for (; l < l1; ++l) {
    const float* kr = kh + l * ks2;
    for (int g = 0; g < G; ++g) {
      float acc = 0.f;
#pragma omp simd reduction(+ : acc)
      for (int d = 0; d < D; ++d) acc += q[g * D + d] * kr[d];
      s[g * L + l] = acc * scale + (bias ? bias[g * L + l] : 0.f);
    }
  }
}

// Weighted sums of value rows [l0, l1) of one KV head: acc[g*D + d], totals tot[g]; returns the
// number of positions kept by any of the G query heads.
// Weighted sums of value rows [l0, l1) of one KV head into acc[g*D + d], with the weights p
// (0 where unkept); returns the number of positions kept by any of the G query heads.
template <int G, int D>
int64_t value_block(const float* vh, int64_t vs2, const float* p, const uint8_t* keep, int64_t L,
                    int64_t l0, int64_t l1, float* acc_out) {
  float acc[G][D] = {};
  int64_t read = 0;
  for (int64_t l = l0; l < l1; ++l) {
    uint8_t any = 0;
    for (int g = 0; g < G; ++g) any |= keep[g * L + l];
    read += any;
    const float* vr = vh + l * vs2;
    for (int g = 0; g < G; ++g) {
      const float w = p[g * L + l];
#pragma omp simd
      for (int d = 0; d < D; ++d) acc[g][d] += w * vr[d];
    }
  }
  for (int g = 0; g < G; ++g) {
    for (int d = 0; d < D; ++d) acc_out[g * D + d] += acc[g][d];
  }
  return read;
}

using ScoreFn = void (*)(const float*, const float*, int64_t, const float*, float, int64_t,
                         int64_t, int64_t, float*);
using ValueFn = int64_t (*)(const float*, int64_t, const float*, const uint8_t*, int64_t, int64_t,
                            int64_t, float*);

template <int D>
std::pair<ScoreFn, ValueFn> pick_group(int64_t groups) {
  switch (groups) {
    case 1: return {score_block<1, D>, value_block<1, D>};
    case 2: return {score_block<2, D>, value_block<2, D>};
    case 3: return {score_block<3, D>, value_block<3, D>};
    case 4: return {score_block<4, D>, value_block<4, D>};
    case 5: return {score_block<5, D>, value_block<5, D>};
    case 6: return {score_block<6, D>, value_block<6, D>};
    case 7: return {score_block<7, D>, value_block<7, D>};
    case 8: return {score_block<8, D>, value_block<8, D>};
    default: return {nullptr, nullptr};
  }
}

std::pair<ScoreFn, ValueFn> pick(int64_t groups, int64_t dim) {
  switch (dim) {
    case 8: return pick_group<8>(groups);
    case 16: return pick_group<16>(groups);
    case 32: return pick_group<32>(groups);
    case 64: return pick_group<64>(groups);
    case 128: return pick_group<128>(groups);
    default: return {nullptr, nullptr};
  }
}

}  // namespace

// Whether the kernel is compiled for `groups` query heads per KV head and head size `dim`.
bool supports(int64_t groups, int64_t dim) { return pick(groups, dim).first != nullptr; }

// Returns out (B, H, G, D) and the number of (KV head, position) pairs kept by any query head
// of the group, summed over the batch.
std::tuple<at::Tensor, int64_t> topk_decode_step(const at::Tensor& query, const at::Tensor& key,
                                         const at::Tensor& value,
                                         const std::optional<at::Tensor>& bias,
                                         double scale, int64_t budget, int64_t n_sink,
                                         int64_t n_recent) {
  TORCH_CHECK(query.dim() == 4 && key.dim() == 4 && value.dim() == 4, "expected 4-d tensors");
  TORCH_CHECK(query.scalar_type() == at::kFloat && key.scalar_type() == at::kFloat &&
                  value.scalar_type() == at::kFloat,
              "topk_decode_step runs on float32 tensors");
  TORCH_CHECK(query.is_contiguous(), "query must be contiguous (B, H, G, D)");
  TORCH_CHECK(key.stride(3) == 1 && value.stride(3) == 1, "key/value rows must be contiguous");
  const int64_t B = query.size(0), H = query.size(1), G = query.size(2), D = query.size(3);
  const int64_t L = key.size(2);
  TORCH_CHECK(key.size(0) == B && key.size(1) == H && key.size(3) == D, "key shape mismatch");
  TORCH_CHECK(value.sizes() == key.sizes(), "value shape must equal key shape");
  TORCH_CHECK(budget >= 1, "budget must be at least 1");
  const auto [score_fn, value_fn] = pick(G, D);
  TORCH_CHECK(score_fn != nullptr, "no kernel for ", G, " groups and head size ", D);
  const bool has_bias = bias.has_value();
  if (has_bias) {
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->is_contiguous() &&
                    bias->numel() == B * H * G * L,
                "bias must be a contiguous float32 (B, H, G, L) tensor");
  }
  const float* q = query.data_ptr<float>();
  const float* k = key.data_ptr<float>();
  const float* v = value.data_ptr<float>();
  const float* bias_ptr = has_bias ? bias->data_ptr<float>() : nullptr;
  const int64_t ks0 = key.stride(0), ks1 = key.stride(1), ks2 = key.stride(2);
  const int64_t vs0 = value.stride(0), vs1 = value.stride(1), vs2 = value.stride(2);
  const float fscale = static_cast<float>(scale);
  const int64_t rows = B * H * G;

  Workspace& workspace = Workspace::at_least(rows * L);
  float* s = workspace.scores.data();
  uint8_t* keep = workspace.keep.data();
  std::vector<float> row_sum(rows);

  // 1. scores, over chunks of (b*h, l) positions: each key row is read once for its G queries.
  at::parallel_for(0, B * H * L, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin / L; bh * L < end; ++bh) {
      const int64_t l0 = std::max(begin - bh * L, int64_t{0});
      const int64_t l1 = std::min(end - bh * L, L);
      score_fn(q + bh * G * D, k + (bh / H) * ks0 + (bh % H) * ks1, ks2,
               has_bias ? bias_ptr + bh * G * L : nullptr, fscale, L, l0, l1, s + bh * G * L);
    }
  });

  // 2. selection, per (b, h, g) row: keep flags and the row's largest score (always kept: the
  // static positions are kept and every unkept middle score is below a kept one).
  const int64_t lo = std::min(n_sink, L);
  const int64_t hi = std::max(lo, L - n_recent);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    std::vector<uint32_t> cand;
    for (int64_t r = begin; r < end; ++r) {
      float* sr = s + r * L;
      uint8_t* kr = keep + r * L;
      const int64_t n = hi - lo;
      // The middle's smallest and largest keys (its largest score) in one vectorised pass.
      uint32_t key_lo = 0xffffffffu, key_hi = 0u;
#pragma omp simd reduction(min : key_lo) reduction(max : key_hi)
      for (int64_t l = lo; l < hi; ++l) {
        const uint32_t key = order_key(sr[l]);
        key_lo = std::min(key_lo, key);
        key_hi = std::max(key_hi, key);
      }
      const float threshold =
          budget >= n ? neg_inf : kth_largest(sr + lo, n, budget, key_lo, key_hi, cand);
      float best = n > 0 ? from_order_key(key_hi) : neg_inf;
      for (int64_t l = 0; l < lo; ++l) best = std::max(best, sr[l]);
      for (int64_t l = hi; l < L; ++l) best = std::max(best, sr[l]);
      for (int64_t l = 0; l < lo; ++l) kr[l] = sr[l] != neg_inf;
#pragma omp simd
      for (int64_t l = lo; l < hi; ++l) kr[l] = (sr[l] >= threshold) & (sr[l] != neg_inf);
      for (int64_t l = hi; l < L; ++l) kr[l] = sr[l] != neg_inf;
      // Softmax numerators where kept, 0 elsewhere, and their sum.
      const float shift = best == neg_inf ? 0.f : best;
      float total = 0.f;
#pragma omp simd reduction(+ : total)
      for (int64_t l = 0; l < L; ++l) {
        const float p = kr[l] ? exp_nonpositive(sr[l] - shift) : 0.f;
        sr[l] = p;
        total += p;
      }
      row_sum[r] = total;
    }
  });

  // 3. weighted sums of the value rows, over chunks of (b*h, l) positions; partials per thread.
  const int64_t n_threads = at::get_num_threads();
  std::vector<float> partial(n_threads * rows * D, 0.f);
  std::vector<int64_t> partial_union(n_threads, 0);
  at::parallel_for(0, B * H * L, 1024, [&](int64_t begin, int64_t end) {
    const int64_t t = at::get_thread_num();
    float* acc_t = partial.data() + t * rows * D;
    for (int64_t bh = begin / L; bh * L < end; ++bh) {
      const int64_t l0 = std::max(begin - bh * L, int64_t{0});
      const int64_t l1 = std::min(end - bh * L, L);
      partial_union[t] += value_fn(v + (bh / H) * vs0 + (bh % H) * vs1, vs2, s + bh * G * L,
                                   keep + bh * G * L, L, l0, l1, acc_t + bh * G * D);
    }
  });

  at::Tensor out = at::zeros({B, H, G, D}, query.options());
  float* o = out.data_ptr<float>();
  int64_t kept_pairs = 0;
  for (int64_t t = 0; t < n_threads; ++t) {
    kept_pairs += partial_union[t];
    for (int64_t j = 0; j < rows * D; ++j) o[j] += partial[t * rows * D + j];
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float inv = row_sum[r] > 0.f ? 1.f / row_sum[r] : 0.f;
    for (int64_t d = 0; d < D; ++d) o[r * D + d] *= inv;
  }
  return {out, kept_pairs};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("supports", &supports, "Whether (groups, head size) has a compiled kernel");
  m.def("topk_decode_step", &topk_decode_step, "Fused top-k decoding attention step (CPU)");
}
