package org.tfderain.core;

/**
 * A float32 RGB image, row-major, channels last ({@code data[(y * width + x) * 3 + c]}), values
 * nominally in [0, 1] — the layout tfderain models take (NHWC without the batch axis).
 *
 * <p>8-bit conversions follow {@code tfderain.io}: {@code u8 → float} is {@code (float) u / 255f}
 * (one correctly rounded float32 division, as numpy's {@code u.astype(float32) / float32(255)}),
 * {@code float → u8} is {@code rint(clip(x, 0, 1) * 255f)} with the product in float32 and ties to
 * even (numpy's {@code np.rint(np.clip(x, 0, 1) * 255.0)} on a float32 array, {@code
 * tfderain.io.to_uint8}).
 */
public final class RgbImage {
  public final int height;
  public final int width;
  public final float[] data;

  /** An image of zeros. */
  public RgbImage(int height, int width) {
    this(height, width, new float[checkedSize(height, width)]);
  }

  /** Wraps {@code data} (not copied). */
  public RgbImage(int height, int width, float[] data) {
    if (data.length != checkedSize(height, width)) {
      throw new IllegalArgumentException(
          "image data has " + data.length + " values, expected " + height + "x" + width + "x3");
    }
    this.height = height;
    this.width = width;
    this.data = data;
  }

  private static int checkedSize(int height, int width) {
    if (height < 1 || width < 1) {
      throw new IllegalArgumentException("image size must be positive, got " + height + "x" + width);
    }
    return Math.multiplyExact(Math.multiplyExact(height, width), 3);
  }

  /** From packed RGB bytes ({@code H × W × 3}, row-major). */
  public static RgbImage fromRgbBytes(byte[] rgb, int height, int width) {
    RgbImage image = new RgbImage(height, width);
    if (rgb.length != image.data.length) {
      throw new IllegalArgumentException(
          "RGB data has " + rgb.length + " bytes, expected " + image.data.length);
    }
    for (int i = 0; i < rgb.length; i++) {
      image.data[i] = (float) (rgb[i] & 0xff) / 255f;
    }
    return image;
  }

  /** From Android-style packed ARGB ints ({@code Bitmap.getPixels}); alpha is ignored. */
  public static RgbImage fromArgb(int[] argb, int height, int width) {
    RgbImage image = new RgbImage(height, width);
    if (argb.length != height * width) {
      throw new IllegalArgumentException(
          "ARGB data has " + argb.length + " pixels, expected " + height * width);
    }
    for (int i = 0; i < argb.length; i++) {
      int p = argb[i];
      image.data[3 * i] = (float) ((p >> 16) & 0xff) / 255f;
      image.data[3 * i + 1] = (float) ((p >> 8) & 0xff) / 255f;
      image.data[3 * i + 2] = (float) (p & 0xff) / 255f;
    }
    return image;
  }

  /** One value as an 8-bit level: {@code rint(clip(x, 0, 1) * 255f)}. */
  public static int toByteLevel(float x) {
    float c = x < 0f ? 0f : (x > 1f ? 1f : x); // NaN stays NaN and becomes 0 below
    float scaled = c * 255f;
    return scaled == scaled ? (int) Math.rint(scaled) : 0;
  }

  /** Packed RGB bytes ({@code H × W × 3}). */
  public byte[] toRgbBytes() {
    byte[] out = new byte[data.length];
    for (int i = 0; i < data.length; i++) {
      out[i] = (byte) toByteLevel(data[i]);
    }
    return out;
  }

  /** Opaque packed ARGB ints for {@code Bitmap.setPixels}. */
  public int[] toArgb() {
    int[] out = new int[height * width];
    for (int i = 0; i < out.length; i++) {
      out[i] =
          0xff000000
              | toByteLevel(data[3 * i]) << 16
              | toByteLevel(data[3 * i + 1]) << 8
              | toByteLevel(data[3 * i + 2]);
    }
    return out;
  }
}
