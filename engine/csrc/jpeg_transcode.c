/* Transcoding: a new JPEG from the old one's DCT coefficients.
 * A JPEG re-encoded at its own size (no resize, no edit, no colour conversion) does not need its
 * pixels: the new file's coefficients are the old ones dequantised with the old tables and
 * quantised again with the new (what jpegtran does to change the quality, JPEG's "requantisation").
 * That skips the IDCT, the chroma upsampling, both colour conversions, the chroma downsampling
 * and the forward DCT, and loses less than the pixel round trip (no rounding and clipping of
 * pixels in between). What the pixel round trip does to chroma is kept, as a filter in the DCT
 * domain, so files stay as small as the RGB pipeline's and libvips's:
 *   - 4:2:0 in: libjpeg's triangle upsampling and 2 x 2 averaging come to [1 6 1]/8 along each
 *     axis, which is the diagonal H(u) H(v) on an 8 x 8 block with mirrored edges
 *     (H(u) = (3 + cos(pi u / 8)) / 4);
 *   - 4:2:2 in, 4:2:0 out: H(u) across, and each pair of vertically adjacent chroma blocks becomes
 *     one by averaging row pairs: an 8 x 16 matrix (DCT . mean of pairs . inverse DCT of both).
 * Grey stays grey. Other layouts return 1 (not handled: the caller decodes the pixels). */
#include "jpeg_shared.h"

static float H[8];        /* the [1 6 1]/8 filter's gain at each DCT frequency */
static float DOWN[8][16]; /* 4:2:2 -> 4:2:0: output vertical frequency v from the stacked pair */
static pthread_once_t TRANSCODE_ONCE = PTHREAD_ONCE_INIT;
/* Requantising rounds to nearest, and a tie (the old value exactly between two new steps,
 * frequent when one quantiser is a multiple of the other's half) toward zero: the old value
 * stood for anything within half an old step, and the smaller one costs fewer bits. A tie
 * rounded away from zero made files 5-20% bigger than the pixel round trip's (whose rounding
 * noise breaks ties either way) at the same distance from the original. Values are multiples
 * of 1/255 apart from a tie, so 1/1024 below one half tells them apart. */
static const float HALF = 0.5f - 1.0f / 1024;

static double basis(int u, int n) { return (u == 0 ? sqrt(0.125) : 0.5) * cos(M_PI * (2 * n + 1) * u / 16.0); }

static void transcode_init(void) {
  for (int u = 0; u < 8; u++) H[u] = (float)((3.0 + cos(M_PI * u / 8.0)) / 4.0);
  for (int v = 0; v < 8; v++)
    for (int k = 0; k < 16; k++) {
      /* Block A (k < 8) holds stacked rows 0..7, block B rows 8..15; output row m is the mean of
       * stacked rows 2m and 2m+1, so A feeds m = 0..3 and B m = 4..7. */
      double sum = 0;
      int f = k & 7, m0 = k < 8 ? 0 : 4;
      for (int m = m0; m < m0 + 4; m++) {
        int n = 2 * (m - m0);
        sum += basis(v, m) * (basis(f, n) + basis(f, n + 1)) / 2;
      }
      DOWN[v][k] = (float)sum;
    }
}

/* Round half away from zero (libjpeg's quantiser), then keep within the 10 bits a baseline
 * coefficient may use (a hostile file's huge coefficients would otherwise stop the encoder). */
static inline JCOEF to_coef(float f) {
  int v = (int)(f + (f < 0 ? -HALF : HALF));
  return (JCOEF)(v > 1023 ? 1023 : v < -1023 ? -1023 : v);
}

#ifdef __SSE2__
/* Round 8 values (lo: the first 4) as to_coef does and store them as coefficients. */
static inline void store_rounded(JCOEF *dst, __m128 lo, __m128 hi) {
  const __m128 sign = _mm_set1_ps(-0.0f), half = _mm_set1_ps(HALF);
  const __m128i lim = _mm_set1_epi16(1023), nlim = _mm_set1_epi16(-1023);
  lo = _mm_add_ps(lo, _mm_or_ps(_mm_and_ps(lo, sign), half));
  hi = _mm_add_ps(hi, _mm_or_ps(_mm_and_ps(hi, sign), half));
  __m128i r = _mm_packs_epi32(_mm_cvttps_epi32(lo), _mm_cvttps_epi32(hi));
  _mm_storeu_si128((__m128i *)dst, _mm_max_epi16(_mm_min_epi16(r, lim), nlim));
}

/* 8 coefficients as floats, times 8 factors. */
static inline void load_scaled(const JCOEF *src, const float *f, __m128 *lo, __m128 *hi) {
  __m128i x = _mm_loadu_si128((const __m128i *)src);
  *lo = _mm_mul_ps(_mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpacklo_epi16(x, x), 16)), _mm_loadu_ps(f));
  *hi = _mm_mul_ps(_mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpackhi_epi16(x, x), 16)), _mm_loadu_ps(f + 4));
}
#endif

/* b[k] = round(b[k] * scale[k]) in place; nat: b's non-zero mask (the rows of zeros at the
 * bottom stay zeros; testing every row costs more in mispredicted branches than it saves). */
static inline void requant_block(JCOEF *b, const float *scale, uint64_t nat) {
  for (int r = 0, rows = rows_used(nat); r < rows; r++) {
#ifdef __SSE2__
    __m128 lo, hi;
    load_scaled(b + 8 * r, scale + 8 * r, &lo, &hi);
    store_rounded(b + 8 * r, lo, hi);
#else
    for (int k = 8 * r; k < 8 * r + 8; k++) b[k] = to_coef(b[k] * scale[k]);
#endif
  }
}

/* Coefficients kept as they are still go through the clamp of to_coef (a hostile file's may
 * be anything a 16-bit number holds). */
static inline void clamp_block(JCOEF *b, uint64_t nat) {
  for (int r = 0, rows = rows_used(nat); r < rows; r++) {
#ifdef __SSE2__
    const __m128i lim = _mm_set1_epi16(1023), nlim = _mm_set1_epi16(-1023);
    __m128i x = _mm_loadu_si128((const __m128i *)(b + 8 * r));
    _mm_storeu_si128((__m128i *)(b + 8 * r), _mm_max_epi16(_mm_min_epi16(x, lim), nlim));
#else
    for (int k = 8 * r; k < 8 * r + 8; k++) b[k] = b[k] > 1023 ? 1023 : b[k] < -1023 ? -1023 : b[k];
#endif
  }
}

/* One 4:2:0 chroma block from two vertically adjacent 4:2:2 ones (a above b). qs: the source's
 * quantisation table; gain[k]: H(u) / new quantiser. */
static void down_block(const JCOEF *a, const JCOEF *b, const float *qs, const float *gain, JCOEF *out) {
  int used[2] = {rows_used(nonzero_natural(a)), rows_used(nonzero_natural(b))}; /* the rest are zeros */
#ifdef __SSE2__
  __m128 acc[16];
  for (int i = 0; i < 16; i++) acc[i] = _mm_setzero_ps();
  for (int k = 0; k < 16; k++) {
    int r = k & 7;
    if (r >= used[k >> 3]) continue;
    __m128 lo, hi;
    load_scaled((k < 8 ? a : b) + 8 * r, qs + 8 * r, &lo, &hi);
    for (int v = 0; v < 8; v++) {
      __m128 w = _mm_set1_ps(DOWN[v][k]);
      acc[2 * v] = _mm_add_ps(acc[2 * v], _mm_mul_ps(w, lo));
      acc[2 * v + 1] = _mm_add_ps(acc[2 * v + 1], _mm_mul_ps(w, hi));
    }
  }
  for (int v = 0; v < 8; v++)
    store_rounded(out + 8 * v, _mm_mul_ps(acc[2 * v], _mm_loadu_ps(gain + 8 * v)),
                  _mm_mul_ps(acc[2 * v + 1], _mm_loadu_ps(gain + 8 * v + 4)));
#else
  float acc[64];
  memset(acc, 0, sizeof acc);
  for (int k = 0; k < 16; k++) {
    int r = k & 7;
    if (r >= used[k >> 3]) continue;
    const JCOEF *row = (k < 8 ? a : b) + 8 * r;
    for (int v = 0; v < 8; v++)
      for (int u = 0; u < 8; u++) acc[8 * v + u] += DOWN[v][k] * (float)row[u] * qs[8 * r + u];
  }
  for (int k = 0; k < 64; k++) out[k] = to_coef(acc[k] * gain[k]);
#endif
}

/* Statistics of the transcoded coefficients, counted as they are made (one pass over the image
 * instead of libjpeg's separate one). AC symbols do not depend on the order of blocks; DC
 * differences do: chroma and grey are in raster order, 4:2:0 luma is walked in MCU order after
 * (2 x 2 blocks, with libjpeg's dummy blocks past odd edges: the previous block's DC, no AC). */
static inline void count_block(struct dr_stats *s, int dct, int act, int *last_dc, const JCOEF *b, uint64_t nat,
                               int ac) {
  s->dc[dct][nbits_of(b[0] - *last_dc)]++;
  *last_dc = b[0];
  if (ac) count_ac(s->ac4[act], b, nat);
}

/* AC symbols are counted on one row of blocks in SAMPLE_ROWS (DC differences on all): the
 * tables come out within 0.3% of the exact ones in bytes (corpus: L02 +0.06%, M01 0.0%,
 * M03 +0.3%), and counting, as much work per block as encoding it, shrinks to a quarter.
 * Every AC symbol a block can hold gets a count of at least one, so every symbol has a code. */
#define SAMPLE_ROWS 4

static inline int sampled(JDIMENSION row) { return row % SAMPLE_ROWS == 0; }

static void count_every_symbol(struct dr_stats *s, int t) {
  s->ac4[t][0][0x00]++; /* EOB */
  s->ac4[t][0][0xF0]++; /* ZRL */
  for (int run = 0; run < 16; run++)
    for (int size = 1; size <= 10; size++) s->ac4[t][0][(run << 4) + size]++;
}

static void count_luma_dc_420(long *dc, uint32_t (*ac)[256], const JCOEF *dcs, JDIMENSION yw, JDIMENSION yh) {
  int last = 0;
  for (JDIMENSION my = 0; my < (yh + 1) / 2; my++)
    for (JDIMENSION mx = 0; mx < (yw + 1) / 2; mx++)
      for (JDIMENSION r = 2 * my; r < 2 * my + 2; r++)
        for (JDIMENSION c = 2 * mx; c < 2 * mx + 2; c++) {
          if (r < yh && c < yw) {
            int v = dcs[(size_t)r * yw + c];
            dc[nbits_of(v - last)]++;
            last = v;
          } else {
            dc[0]++; /* a dummy block: the DC just coded again, and an EOB */
            ac[0][0]++;
          }
        }
}

/* The head of libjpeg's virtual block array (jmemmgr.c's jvirt_barray_control, the same since
 * IJG 6b). libjpeg refuses to hand out more rows of an array at a time than it was made for
 * (`maxaccess`): a 4:2:2 source's luma is read a row of blocks at a time, a 4:2:0 output's two.
 * When the array is wholly in memory that number guards nothing, and raising it saves copying
 * the whole luma (41 MB at 20 MP). Every field is checked against what libjpeg itself reports
 * first; anything unexpected and the caller takes the pixel path. */
struct dr_barray_head {
  JBLOCKARRAY mem_buffer;
  JDIMENSION rows_in_array, blocksperrow, maxaccess, rows_in_mem, rowsperchunk, cur_start_row, first_undef_row;
};

static int widen_access(j_decompress_ptr d, jvirt_barray_ptr a, JDIMENSION cols, JDIMENSION rows, JDIMENSION want) {
  struct dr_barray_head *h = (struct dr_barray_head *)a;
  if (h->rows_in_array != rows || h->blocksperrow != cols || h->rows_in_mem != rows || h->cur_start_row != 0 ||
      h->first_undef_row != rows || h->maxaccess < 1 || h->maxaccess > want)
    return 0;
  if ((*d->mem->access_virt_barray)((j_common_ptr)d, a, 0, 1, FALSE) != h->mem_buffer) return 0;
  h->maxaccess = want;
  return 1;
}

static jvirt_barray_ptr request_blocks(j_decompress_ptr d, JDIMENSION cols, JDIMENSION rows, JDIMENSION maxaccess) {
  return (*d->mem->request_virt_barray)((j_common_ptr)d, JPOOL_IMAGE, FALSE, cols, rows, maxaccess);
}

static JBLOCKROW block_row(j_decompress_ptr d, jvirt_barray_ptr a, JDIMENSION row, boolean writable) {
  return (*d->mem->access_virt_barray)((j_common_ptr)d, a, row, 1, writable)[0];
}

/* Returns 0 and a malloc'd JPEG in *out (free with dr_jpeg_free); 1 when the layout is not one
 * handled here (nothing is allocated then); -1 with a message in err. */
int dr_jpeg_transcode(const unsigned char *in, unsigned long in_size, int quality, int progressive, int optimize,
                      unsigned char **out, unsigned long *out_size, char *err, int errlen) {
  struct jpeg_decompress_struct d;
  struct jpeg_compress_struct c;
  struct dr_err jerr;
  struct dr_stats *volatile stats = NULL;
  JCOEF *volatile dcs = NULL;
  volatile int have_c = 0;
  struct dr_dest result = {0}; /* the output's one live buffer: see dr_dest */
  *out = NULL;
  *out_size = 0;
  d.err = dr_err_init(&jerr, err, errlen);
  if (setjmp(jerr.jump)) {
    if (have_c) jpeg_destroy_compress(&c);
    jpeg_destroy_decompress(&d);
    free(stats);
    free(dcs);
    free(result.buf);
    *out = NULL;
    *out_size = 0;
    return -1;
  }
  jpeg_create_decompress(&d);
  jpeg_mem_src(&d, in, in_size);
  jpeg_read_header(&d, TRUE);
  /* Handled: 8-bit grey, and 8-bit YCbCr with 4:2:0 or 4:2:2 chroma. */
  int grey = d.num_components == 1 && d.jpeg_color_space == JCS_GRAYSCALE;
  int ycc = d.num_components == 3 && d.jpeg_color_space == JCS_YCbCr && d.comp_info[0].h_samp_factor == 2 &&
            d.comp_info[1].h_samp_factor == 1 && d.comp_info[1].v_samp_factor == 1 &&
            d.comp_info[2].h_samp_factor == 1 && d.comp_info[2].v_samp_factor == 1;
  int from422 = ycc && d.comp_info[0].v_samp_factor == 1;
  if (d.data_precision != 8 || !(grey || (ycc && (from422 || d.comp_info[0].v_samp_factor == 2)))) {
    jpeg_destroy_decompress(&d);
    return 1;
  }
  pthread_once(&TRANSCODE_ONCE, transcode_init);
  /* The output's arrays where the source's cannot be reused, from 4:2:2: chroma (half as many
   * rows), and luma when its rows of blocks are odd (4:2:0's MCUs are two blocks tall). */
  JDIMENSION yw = (d.image_width + 7) / 8, yh = (d.image_height + 7) / 8;
  JDIMENSION cw = (d.image_width + 15) / 16, ch = (d.image_height + 15) / 16;
  jvirt_barray_ptr new_arrays[3] = {NULL, NULL, NULL};
  if (from422) {
    if (yh % 2) new_arrays[0] = request_blocks(&d, (yw + 1) & ~1u, yh + 1, 2);
    new_arrays[1] = request_blocks(&d, cw, ch, 1);
    new_arrays[2] = request_blocks(&d, cw, ch, 1);
  }
  jvirt_barray_ptr *src = jpeg_read_coefficients(&d);
  if (from422 && !new_arrays[0] && !widen_access(&d, src[0], (yw + 1) & ~1u, yh, 2)) {
    jpeg_destroy_decompress(&d);
    return 1;
  }

  c.err = &jerr.pub;
  jpeg_create_compress(&c);
  have_c = 1;
  dr_dest_start(&c, &result, in_size > 4096 ? (size_t)in_size : 4096);
  jpeg_copy_critical_parameters(&d, &c);
  c.write_JFIF_header = FALSE;
  c.write_Adobe_marker = FALSE;
  c.restart_interval = 0;
  c.restart_in_rows = 0;
  for (int ci = 0; ci < c.num_components; ci++) c.comp_info[ci].quant_tbl_no = ci == 0 ? 0 : 1;
  if (ycc) c.comp_info[0].v_samp_factor = 2;
  jpeg_set_quality(&c, quality, TRUE);

  /* Sequential output with optimised tables: the statistics are counted here, as each block is
   * made, and the tables handed to libjpeg (which then makes a single pass). */
  int count = optimize && !progressive;
  if (count) {
    pthread_once(&ZZMASK_ONCE, zzmask_init);
    stats = (struct dr_stats *)calloc(1, sizeof(struct dr_stats));
    if (!stats) dr_fail((j_common_ptr)&c, "out of memory");
    if (ycc && !(dcs = (JCOEF *)malloc(sizeof(JCOEF) * (size_t)yw * yh))) dr_fail((j_common_ptr)&c, "out of memory");
  }
  jvirt_barray_ptr dst[3];
  for (int ci = 0; ci < d.num_components; ci++) {
    jpeg_component_info *sc = &d.comp_info[ci];
    /* A (hostile) progressive file may never send a component: no table was ever latched. */
    if (!sc->quant_table) dr_fail((j_common_ptr)&c, "a colour component of the JPEG has no data");
    const UINT16 *qs = sc->quant_table->quantval, *qt = c.quant_tbl_ptrs[c.comp_info[ci].quant_tbl_no]->quantval;
    int dct = c.comp_info[ci].dc_tbl_no, act = c.comp_info[ci].ac_tbl_no, last_dc = 0;
    float scale[64], qsf[64];
    int same = 1;
    for (int k = 0; k < 64; k++) {
      float gain = ci == 0 ? 1.0f : H[k & 7] * (from422 ? 1.0f : H[k >> 3]);
      scale[k] = gain * (float)qs[k] / (float)qt[k];
      qsf[k] = (float)qs[k];
      same &= ci == 0 && qs[k] == qt[k];
    }
    dst[ci] = new_arrays[ci] ? new_arrays[ci] : src[ci];
    if (from422 && ci > 0) {
      float gain[64];
      for (int k = 0; k < 64; k++) gain[k] = H[k & 7] / (float)qt[k];
      JDIMENSION rows = sc->height_in_blocks;
      for (JDIMENSION r = 0; r < ch; r++) {
        JBLOCKROW o = block_row(&d, dst[ci], r, TRUE);
        JBLOCKROW a = block_row(&d, src[ci], 2 * r < rows ? 2 * r : rows - 1, FALSE);
        JBLOCKROW b = block_row(&d, src[ci], 2 * r + 1 < rows ? 2 * r + 1 : rows - 1, FALSE);
        for (JDIMENSION x = 0; x < cw; x++) {
          JDIMENSION sx = x < sc->width_in_blocks ? x : sc->width_in_blocks - 1;
          down_block(a[sx], b[sx], qsf, gain, o[x]);
          if (count) count_block(stats, dct, act, &last_dc, o[x], nonzero_natural(o[x]), sampled(r));
        }
      }
      continue;
    }
    for (JDIMENSION r = 0; r < sc->height_in_blocks; r++) {
      JBLOCKROW row = block_row(&d, src[ci], r, !new_arrays[ci]);
      JBLOCKROW o = new_arrays[ci] ? block_row(&d, dst[ci], r, TRUE) : row;
      for (JDIMENSION x = 0; x < sc->width_in_blocks; x++) {
        if (o != row) memcpy(o[x], row[x], sizeof(JBLOCK));
        uint64_t nat = nonzero_natural(o[x]);
        if (!same) {
          requant_block(o[x], scale, nat);
          nat = nonzero_natural(o[x]);
        } else {
          clamp_block(o[x], nat);
        }
        if (!count) continue;
        if (ci == 0 && ycc) {
          dcs[(size_t)r * yw + x] = o[x][0];
          if (sampled(r)) count_ac(stats->ac4[act], o[x], nat);
        } else {
          count_block(stats, dct, act, &last_dc, o[x], nat, sampled(r));
        }
      }
    }
    if (count && ci == 0 && ycc) count_luma_dc_420(stats->dc[dct], stats->ac4[act], dcs, yw, yh);
    if (new_arrays[ci] && ci == 0 && yh % 2) {
      /* The padding row the encoder asks for and never reads (libjpeg refuses to hand out rows
       * nobody wrote): a copy of the last one. */
      JBLOCKROW last = block_row(&d, dst[0], sc->height_in_blocks - 1, FALSE);
      JBLOCKROW pad = block_row(&d, dst[0], sc->height_in_blocks, TRUE);
      memcpy(pad, last, sizeof(JBLOCK) * ((yw + 1) & ~1u));
    }
  }
  if (count) {
    for (int ci = 0; ci < c.num_components; ci++) {
      int dct = c.comp_info[ci].dc_tbl_no, act = c.comp_info[ci].ac_tbl_no;
      if (!stats->have_dc[dct]) {
        jpeg_gen_optimal_table(&c, &stats->dc_tbl[dct], stats->dc[dct]);
        dr_install(&c, &c.dc_huff_tbl_ptrs[dct], &stats->dc_tbl[dct]);
        stats->have_dc[dct] = TRUE;
      }
      if (!stats->have_ac[act]) {
        count_every_symbol(stats, act);
        sum_ac(stats, act);
        jpeg_gen_optimal_table(&c, &stats->ac_tbl[act], stats->ac[act]);
        dr_install(&c, &c.ac_huff_tbl_ptrs[act], &stats->ac_tbl[act]);
        stats->have_ac[act] = TRUE;
      }
    }
  }

  if (progressive) jpeg_simple_progression(&c);
  c.optimize_coding = optimize && progressive ? TRUE : FALSE;
  jpeg_write_coefficients(&c, dst);
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  have_c = 0;
  jpeg_finish_decompress(&d);
  jpeg_destroy_decompress(&d);
  free(stats);
  free(dcs);
  *out = result.buf;
  *out_size = dr_dest_size(&result);
  return 0;
}
