package org.tfderain.core;

/**
 * Blends overlapping tile predictions into one image with raised-cosine weights, as {@code
 * tfderain.inference} does.
 *
 * <p>Arithmetic, exactly (the Python golden writer {@code android_demo/tools/make_golden.py}
 * follows it operation for operation, so results are equal bit for bit):
 *
 * <ul>
 *   <li>Window of one axis, for a tile side {@code size}: with {@code margin = halo / 2}
 *       (integer division), pixel {@code i} has {@code t = clamp((i + 0.5 - margin) / halo, 0, 1)}
 *       and {@code ramp[i] = (float) (0.5 - 0.5 * cos(PI * t))}, all in double, cosine from
 *       {@link StrictMath} (fdlibm); rounded to float32 once at the end. A side inside the image
 *       takes {@code min(w, ramp[i])} (start) / {@code min(w, ramp[size - 1 - i])} (end), a side on
 *       the padded image border keeps 1. {@code halo == 0} gives all ones. tfderain's Python
 *       {@code blend_window} evaluates the same formula in float32; its values differ from these by
 *       at most 1.2e-7 (two float32 ulps), zeros and ones coincide.
 *   <li>Accumulation, in float32, tiles in row-major order: {@code acc[p] += pred[p] * (wy * wx)}
 *       where the product {@code wy * wx} is rounded to float32 first, then multiplied by the
 *       prediction (rounded), then added (rounded). No fused multiply-add.
 *   <li>Weight sums per axis, float32, in the same tile order: {@code sumY[y + r] += wy[r]}.
 *   <li>Normalisation: {@code out = (acc / sumY) / sumX}, two float32 divisions in that order.
 *   <li>The padded border is cropped away and values are clipped to [0, 1].
 * </ul>
 */
public final class Blender {
  private final Tiler tiler;
  private final float[] acc;
  private final float[] sumY;
  private final float[] sumX;

  public Blender(Tiler tiler) {
    this.tiler = tiler;
    this.acc = new float[tiler.paddedHeight * tiler.paddedWidth * 3];
    this.sumY = new float[tiler.paddedHeight];
    this.sumX = new float[tiler.paddedWidth];
    // Weight sums depend only on the grid; accumulate them in tile order up front.
    for (int y : tiler.ys) {
      float[] wy = windowY(y);
      for (int r = 0; r < wy.length; r++) {
        sumY[y + r] += wy[r];
      }
    }
    for (int x : tiler.xs) {
      float[] wx = windowX(x);
      for (int c = 0; c < wx.length; c++) {
        sumX[x + c] += wx[c];
      }
    }
  }

  /**
   * One axis of a tile's blending weight.
   *
   * @param size tile side
   * @param halo the model's halo
   * @param rampStart the tile's start side is inside the image (blended with a neighbour)
   * @param rampEnd the tile's end side is inside the image
   */
  public static float[] window(int size, int halo, boolean rampStart, boolean rampEnd) {
    float[] w = new float[size];
    java.util.Arrays.fill(w, 1f);
    if (halo <= 0) {
      return w;
    }
    int margin = halo / 2;
    float[] ramp = new float[size];
    for (int i = 0; i < size; i++) {
      double t = ((i + 0.5) - margin) / halo;
      t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
      ramp[i] = (float) (0.5 - 0.5 * StrictMath.cos(Math.PI * t));
    }
    for (int i = 0; i < size; i++) {
      if (rampStart) {
        w[i] = Math.min(w[i], ramp[i]);
      }
      if (rampEnd) {
        w[i] = Math.min(w[i], ramp[size - 1 - i]);
      }
    }
    return w;
  }

  private float[] windowY(int y) {
    return window(tiler.tileHeight, tiler.halo, y > 0, y + tiler.tileHeight < tiler.paddedHeight);
  }

  private float[] windowX(int x) {
    return window(tiler.tileWidth, tiler.halo, x > 0, x + tiler.tileWidth < tiler.paddedWidth);
  }

  /** Adds one tile's prediction (HWC floats, tile size) at ({@code y}, {@code x}). */
  public void add(float[] prediction, int y, int x) {
    int th = tiler.tileHeight;
    int tw = tiler.tileWidth;
    if (prediction.length != th * tw * 3) {
      throw new IllegalArgumentException(
          "tile prediction has " + prediction.length + " values, expected " + th + "x" + tw + "x3");
    }
    float[] wy = windowY(y);
    float[] wx = windowX(x);
    int pw = tiler.paddedWidth;
    for (int r = 0; r < th; r++) {
      for (int c = 0; c < tw; c++) {
        float weight = wy[r] * wx[c];
        int src = (r * tw + c) * 3;
        int dst = ((y + r) * pw + (x + c)) * 3;
        acc[dst] += prediction[src] * weight;
        acc[dst + 1] += prediction[src + 1] * weight;
        acc[dst + 2] += prediction[src + 2] * weight;
      }
    }
  }

  /** The blended image: normalised, cropped to the original size, clipped to [0, 1]. */
  public RgbImage result() {
    RgbImage out = new RgbImage(tiler.height, tiler.width);
    int pw = tiler.paddedWidth;
    for (int y = 0; y < tiler.height; y++) {
      for (int x = 0; x < tiler.width; x++) {
        for (int ch = 0; ch < 3; ch++) {
          float v = acc[(y * pw + x) * 3 + ch] / sumY[y] / sumX[x];
          out.data[(y * tiler.width + x) * 3 + ch] = v < 0f ? 0f : (v > 1f ? 1f : v);
        }
      }
    }
    return out;
  }
}
