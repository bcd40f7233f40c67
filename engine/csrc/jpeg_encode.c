/* Darkroom's JPEG encoder: libjpeg-turbo through the classic libjpeg API (libjpeg.so.62), which
 * the TurboJPEG 2.1 API cannot drive the way we need:
 *   - optimised Huffman tables (sharp's default), with a fast statistics pass (jpeg_shared.h);
 *   - the accurate integer DCT (TurboJPEG picks the fast, less accurate one by default);
 *   - no JFIF APP0 segment (18 bytes nobody reads; sharp writes none);
 *   - input as 8-bit grey, RGB, or Y/Cb/Cr planes already at the output's subsampling (raw
 *     data: no colour conversion and no chroma downsampling when the pixels came from a JPEG).
 * Errors longjmp back here and come out as -1 with libjpeg's message. */
#include "jpeg_shared.h"

static boolean dr_gather(j_compress_ptr cinfo, JBLOCKROW *MCU_data) {
  struct dr_stats *s = (struct dr_stats *)cinfo->client_data;
  for (int blkn = 0; blkn < cinfo->blocks_in_MCU; blkn++) {
    int ci = cinfo->MCU_membership[blkn];
    jpeg_component_info *comp = cinfo->cur_comp_info[ci];
    const JCOEF *b = MCU_data[blkn][0];
    int d = b[0] - s->last_dc[ci];
    s->last_dc[ci] = b[0];
    s->dc[comp->dc_tbl_no][nbits_of(d)]++;
    count_ac(s->ac4[comp->ac_tbl_no], b, nonzero_natural(b));
  }
  return TRUE;
}

static void dr_finish_gather(j_compress_ptr cinfo) {
  struct dr_stats *s = (struct dr_stats *)cinfo->client_data;
  for (int ci = 0; ci < cinfo->comps_in_scan; ci++) {
    jpeg_component_info *comp = cinfo->cur_comp_info[ci];
    int dct = comp->dc_tbl_no, act = comp->ac_tbl_no;
    if (!s->have_dc[dct]) {
      jpeg_gen_optimal_table(cinfo, &s->dc_tbl[dct], s->dc[dct]);
      s->have_dc[dct] = TRUE;
    }
    if (!s->have_ac[act]) {
      sum_ac(s, act);
      jpeg_gen_optimal_table(cinfo, &s->ac_tbl[act], s->ac[act]);
      s->have_ac[act] = TRUE;
    }
  }
}

/* ---- Encoder ---- */

/* Pixels to encode. kind 0: grey, 1: RGB (interleaved, data[0]); 2: Y, Cb, Cr planes (data[0..3],
 * plane_w/plane_h each) already subsampled as `subsamp` says. */
struct dr_src {
  int width, height, kind;
  const unsigned char *data[3];
  int stride[3];
  int plane_w[3], plane_h[3];
};

static void configure(j_compress_ptr cinfo, const struct dr_src *src, int quality, int subsamp, int progressive) {
  cinfo->image_width = (JDIMENSION)src->width;
  cinfo->image_height = (JDIMENSION)src->height;
  cinfo->input_components = src->kind == 0 ? 1 : 3;
  cinfo->in_color_space = src->kind == 0 ? JCS_GRAYSCALE : src->kind == 1 ? JCS_RGB : JCS_YCbCr;
  jpeg_set_defaults(cinfo);
  cinfo->write_JFIF_header = FALSE;
  cinfo->dct_method = JDCT_ISLOW;
  jpeg_set_quality(cinfo, quality, TRUE);
  if (src->kind != 0) {
    cinfo->comp_info[0].h_samp_factor = subsamp == 0 ? 1 : 2;
    cinfo->comp_info[0].v_samp_factor = subsamp == 2 ? 2 : 1;
    cinfo->comp_info[1].h_samp_factor = cinfo->comp_info[1].v_samp_factor = 1;
    cinfo->comp_info[2].h_samp_factor = cinfo->comp_info[2].v_samp_factor = 1;
  }
  if (progressive) jpeg_simple_progression(cinfo);
  cinfo->raw_data_in = src->kind == 2 ? TRUE : FALSE;
}

/* Give libjpeg every row (after jpeg_start_compress). Raw data must come in whole iMCU rows,
 * each component padded to whole blocks: rows are copied into `padded` (sized by padded_size),
 * repeating the last column and the last row as libjpeg's own downsampler would. */
static size_t padded_size(j_compress_ptr cinfo) {
  size_t total = 0;
  for (int c = 0; c < cinfo->num_components; c++)
    total += (size_t)cinfo->comp_info[c].width_in_blocks * DCTSIZE * cinfo->comp_info[c].v_samp_factor * DCTSIZE;
  return total;
}

static void feed(j_compress_ptr cinfo, const struct dr_src *src, JSAMPLE *padded) {
  if (src->kind != 2) {
    size_t stride = (size_t)src->stride[0];
    while (cinfo->next_scanline < cinfo->image_height) {
      JSAMPROW rows[16];
      JDIMENSION n = 0;
      while (n < 16 && cinfo->next_scanline + n < cinfo->image_height) {
        rows[n] = (JSAMPROW)(src->data[0] + (size_t)(cinfo->next_scanline + n) * stride);
        n++;
      }
      jpeg_write_scanlines(cinfo, rows, n);
    }
    return;
  }
  int ncomp = cinfo->num_components;
  size_t pw[3];
  int rows_per[3];
  JSAMPROW rowptr[3][2 * DCTSIZE];
  JSAMPARRAY planes[3];
  JSAMPLE *at = padded;
  for (int c = 0; c < ncomp; c++) {
    pw[c] = (size_t)cinfo->comp_info[c].width_in_blocks * DCTSIZE;
    rows_per[c] = cinfo->comp_info[c].v_samp_factor * DCTSIZE;
    for (int r = 0; r < rows_per[c]; r++) rowptr[c][r] = at + (size_t)r * pw[c];
    at += pw[c] * rows_per[c];
    planes[c] = rowptr[c];
  }
  for (int iy = 0; cinfo->next_scanline < cinfo->image_height; iy++) {
    for (int c = 0; c < ncomp; c++) {
      int w = src->plane_w[c], h = src->plane_h[c];
      for (int r = 0; r < rows_per[c]; r++) {
        int y = iy * rows_per[c] + r;
        if (y >= h) y = h - 1;
        JSAMPLE *dst = rowptr[c][r];
        size_t n = (size_t)w < pw[c] ? (size_t)w : pw[c];
        memcpy(dst, src->data[c] + (size_t)y * src->stride[c], n);
        if (pw[c] > n) memset(dst + n, dst[n - 1], pw[c] - n);
      }
    }
    jpeg_write_raw_data(cinfo, planes, (JDIMENSION)(cinfo->max_v_samp_factor * DCTSIZE));
  }
}

/* subsamp: 0 4:4:4, 1 4:2:2, 2 4:2:0. Returns 0 and a malloc'd JPEG in *out (free with
 * dr_jpeg_free), or -1 with a message in err.
 *
 * Optimised tables in sequential mode take two passes over the pixels: the first only gathers
 * statistics (dr_gather), the second encodes with the tables made from them. libjpeg's own way
 * keeps every quantised coefficient of the image (2 bytes a sample: 61 MB for 20 MP at 4:2:0)
 * between a gathering pass and an output pass; running the DCT twice is cheaper than filling
 * and reading back that buffer, and the memory is not needed. */
int dr_jpeg_encode(const struct dr_src *src, int quality, int subsamp, int progressive, int optimize,
                   unsigned char **out, unsigned long *out_size, char *err, int errlen) {
  struct jpeg_compress_struct cinfo;
  struct dr_err jerr;
  struct dr_stats *volatile stats = NULL;
  JSAMPLE *volatile padded = NULL;
  /* Both outputs live in these (not in locals libjpeg updates late): see dr_dest. */
  struct dr_dest scratch = {0}, result = {0};
  *out = NULL;
  *out_size = 0;
  cinfo.err = dr_err_init(&jerr, err, errlen);
  if (setjmp(jerr.jump)) {
    jpeg_destroy_compress(&cinfo);
    free(padded);
    free(stats);
    free(scratch.buf);
    free(result.buf);
    *out = NULL;
    *out_size = 0;
    return -1;
  }
  jpeg_create_compress(&cinfo);
  boolean two_pass = optimize && !progressive;
  if (two_pass) {
    pthread_once(&ZZMASK_ONCE, zzmask_init);
    stats = (struct dr_stats *)calloc(1, sizeof(struct dr_stats));
    if (!stats) dr_fail((j_common_ptr)&cinfo, "out of memory");
    cinfo.client_data = stats;
    dr_dest_start(&cinfo, &scratch, 4096); /* the statistics pass writes only headers */
    configure(&cinfo, src, quality, subsamp, progressive);
    cinfo.optimize_coding = FALSE;
    jpeg_start_compress(&cinfo, FALSE);
    if (src->kind == 2 && !padded) {
      padded = (JSAMPLE *)malloc(padded_size(&cinfo));
      if (!padded) dr_fail((j_common_ptr)&cinfo, "out of memory");
    }
    cinfo.entropy->encode_mcu = dr_gather;
    cinfo.entropy->finish_pass = dr_finish_gather;
    feed(&cinfo, src, padded);
    jpeg_finish_compress(&cinfo);
    free(scratch.buf);
    scratch.buf = NULL;
  }
  dr_dest_start(&cinfo, &result, 256 * 1024);
  configure(&cinfo, src, quality, subsamp, progressive);
  cinfo.optimize_coding = optimize && progressive ? TRUE : FALSE;
  if (two_pass) {
    for (int i = 0; i < NUM_HUFF_TBLS; i++) {
      if (stats->have_dc[i]) dr_install(&cinfo, &cinfo.dc_huff_tbl_ptrs[i], &stats->dc_tbl[i]);
      if (stats->have_ac[i]) dr_install(&cinfo, &cinfo.ac_huff_tbl_ptrs[i], &stats->ac_tbl[i]);
    }
  }
  jpeg_start_compress(&cinfo, TRUE);
  if (src->kind == 2 && !padded) {
    padded = (JSAMPLE *)malloc(padded_size(&cinfo));
    if (!padded) dr_fail((j_common_ptr)&cinfo, "out of memory");
  }
  feed(&cinfo, src, padded);
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  free(padded);
  free(stats);
  *out = result.buf;
  *out_size = dr_dest_size(&result);
  return 0;
}

void dr_jpeg_free(unsigned char *buf) { free(buf); }
