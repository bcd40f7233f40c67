/* Decode one rectangle of a JPEG, not the whole photo: libjpeg-turbo's jpeg_skip_scanlines and
 * jpeg_crop_scanline (libjpeg API, libjpeg.so.62) skip the IDCT, upsampling and colour
 * conversion of everything outside it (the entropy-coded data is still read, as it must be).
 * A job whose first edit is a crop (a quarter of a 20 MP photo, say) then decodes and holds a
 * quarter of the pixels. Output: 8-bit RGB, or grey for a grey JPEG, rows packed. Errors
 * longjmp back here and come out as -1 with libjpeg's message. */
#include "jpeg_shared.h"

/* dst holds w * h * channels bytes (channels: 1 for a grey JPEG, else 3). Returns 0, or 1 when
 * the rectangle is not inside the image, the colour space is not one decoded here or the JPEG
 * does not have `channels` (nothing written), or -1 with a message in err. */
int dr_jpeg_decode_region(const unsigned char *in, unsigned long in_size, unsigned x, unsigned y, unsigned w,
                          unsigned h, int channels, unsigned char *dst, char *err, int errlen) {
  struct jpeg_decompress_struct d;
  struct dr_err jerr;
  JSAMPLE *volatile row = NULL;
  d.err = dr_err_init(&jerr, err, errlen);
  if (setjmp(jerr.jump)) {
    jpeg_destroy_decompress(&d);
    free(row);
    return -1;
  }
  jpeg_create_decompress(&d);
  jpeg_mem_src(&d, in, in_size);
  jpeg_read_header(&d, TRUE);
  int grey = d.num_components == 1;
  if ((grey ? 1 : 3) != channels || (!grey && (d.num_components != 3 || (d.jpeg_color_space != JCS_YCbCr &&
                                                                         d.jpeg_color_space != JCS_RGB))) ||
      w == 0 || h == 0 ||
      x >= d.image_width || y >= d.image_height || w > d.image_width - x || h > d.image_height - y) {
    jpeg_destroy_decompress(&d);
    return 1;
  }
  d.out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
  d.dct_method = JDCT_ISLOW;
  jpeg_start_decompress(&d);
  /* Chroma upsampling blends each sample with its neighbours, which libjpeg does not have at
   * the edge of what it decodes: decode a margin of 16 pixels (an iMCU) around the rectangle
   * where the image has them, so the rectangle's own pixels are the full decode's. libjpeg
   * widens the columns further, to whole iMCUs; the rectangle is cut from that. */
  unsigned top = y > 16 ? y - 16 : 0;
  JDIMENSION left = x > 16 ? x - 16 : 0, right = x + w + 16 < d.image_width ? x + w + 16 : d.image_width;
  JDIMENSION width = right - left;
  jpeg_crop_scanline(&d, &left, &width);
  row = (JSAMPLE *)malloc((size_t)width * channels);
  if (!row) {
    jpeg_destroy_decompress(&d);
    strncpy(err, "out of memory", errlen - 1);
    return -1;
  }
  if (top > 0) jpeg_skip_scanlines(&d, top);
  size_t skip = (size_t)(x - left) * channels, bytes = (size_t)w * channels;
  for (unsigned r = top; r < y + h; r++) {
    JSAMPROW rows[1] = {row};
    if (jpeg_read_scanlines(&d, rows, 1) != 1) {
      jpeg_destroy_decompress(&d);
      free(row);
      strncpy(err, "the JPEG ended before the crop box", errlen - 1);
      return -1;
    }
    if (r >= y) memcpy(dst + (size_t)(r - y) * bytes, row + skip, bytes);
  }
  /* The rows below are not needed: stop here (libjpeg allows abandoning a decode). */
  jpeg_destroy_decompress(&d);
  free(row);
  return 0;
}
