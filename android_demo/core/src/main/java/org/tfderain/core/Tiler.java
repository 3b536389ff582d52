package org.tfderain.core;

/**
 * Where the tiles of an image go, and how the image is padded for them.
 *
 * <p>The rules are those of {@code tfderain.inference} (see its module docstring), adapted to a
 * model with a fixed input size:
 *
 * <ol>
 *   <li>The image is reflect-padded at the bottom and right up to the model's {@code multiple},
 *       and further up to the tile size when it is smaller than a tile (a fixed-size model
 *       cannot take a smaller input; the dynamic-size Python path shrinks the tile instead).
 *       Reflection is numpy's {@code mode="reflect"} (edge pixel not repeated), repeated as often
 *       as needed: index {@code i >= n} maps to {@code m = i mod 2(n-1)}, then {@code m} if {@code
 *       m < n} else {@code 2(n-1) - m}; a one-pixel axis is repeated.
 *   <li>Tile starts along each axis are {@link #tileStarts}, identical to {@code
 *       tfderain.inference.tile_starts}: the first tile at 0, the last flush with the padded edge,
 *       the ones between spread evenly on the multiple grid, neighbours overlapping by at least
 *       {@code overlap = 2 × halo}.
 *   <li>Tiles are visited row by row ({@code y} outer, {@code x} inner), the order in which
 *       {@link Blender} accumulates them.
 * </ol>
 */
public final class Tiler {
  public final int height;
  public final int width;
  public final int paddedHeight;
  public final int paddedWidth;
  public final int tileHeight;
  public final int tileWidth;
  public final int multiple;
  public final int halo;
  public final int[] ys;
  public final int[] xs;

  /**
   * @param height image height
   * @param width image width
   * @param tileHeight model input height (a multiple of {@code multiple})
   * @param tileWidth model input width (a multiple of {@code multiple})
   * @param multiple the model's size multiple
   * @param halo the model's halo; tiles overlap by {@code 2 * halo}
   */
  public Tiler(int height, int width, int tileHeight, int tileWidth, int multiple, int halo) {
    if (height < 1 || width < 1) {
      throw new IllegalArgumentException("image size must be positive, got " + height + "x" + width);
    }
    if (multiple < 1 || halo < 0 || tileHeight < 1 || tileWidth < 1) {
      throw new IllegalArgumentException(
          "bad tiling: tile " + tileHeight + "x" + tileWidth + ", multiple " + multiple
              + ", halo " + halo);
    }
    if (tileHeight % multiple != 0 || tileWidth % multiple != 0) {
      throw new IllegalArgumentException(
          "tile " + tileHeight + "x" + tileWidth + " is not a multiple of " + multiple);
    }
    this.height = height;
    this.width = width;
    this.tileHeight = tileHeight;
    this.tileWidth = tileWidth;
    this.multiple = multiple;
    this.halo = halo;
    this.paddedHeight = Math.max(roundUp(height, multiple), tileHeight);
    this.paddedWidth = Math.max(roundUp(width, multiple), tileWidth);
    this.ys = tileStarts(paddedHeight, tileHeight, 2 * halo, multiple);
    this.xs = tileStarts(paddedWidth, tileWidth, 2 * halo, multiple);
  }

  /** A tiler for a fixed-size model described by {@code spec}. */
  public static Tiler forSpec(ModelSpec spec, int height, int width) {
    if (!spec.hasFixedTile()) {
      throw new IllegalArgumentException(spec.source + ": the app needs a fixed tile size");
    }
    return new Tiler(height, width, spec.tileHeight, spec.tileWidth, spec.multiple, spec.halo);
  }

  /** Number of tiles. */
  public int count() {
    return ys.length * xs.length;
  }

  /** {@code value} rounded up to a multiple of {@code multiple}. */
  public static int roundUp(int value, int multiple) {
    return (value + multiple - 1) / multiple * multiple;
  }

  /**
   * Start offsets of tiles of size {@code tile} covering {@code length} pixels: exactly {@code
   * tfderain.inference.tile_starts(length, tile, overlap, multiple)}.
   *
   * @throws IllegalArgumentException when the tile does not exceed the overlap by a multiple
   */
  public static int[] tileStarts(int length, int tile, int overlap, int multiple) {
    if (tile >= length) {
      return new int[] {0};
    }
    int step = Math.floorDiv(tile - overlap, multiple) * multiple;
    if (step < multiple) {
      throw new IllegalArgumentException(
          "tile size " + tile + " is too small: it must exceed the overlap of " + overlap
              + " pixels (2 x the model's halo) by at least " + multiple);
    }
    int count = 1 + (length - tile + step - 1) / step; // 1 + ceil((length - tile) / step)
    long units = (length - tile) / multiple;
    int[] starts = new int[count];
    for (int i = 0; i < count; i++) {
      starts[i] = (int) (i * units / (count - 1)) * multiple;
    }
    return starts;
  }

  /** numpy {@code reflect} padding index: where padded index {@code i} reads from, for size n. */
  public static int reflectIndex(int i, int n) {
    if (i < n) {
      return i;
    }
    if (n == 1) {
      return 0;
    }
    int period = 2 * (n - 1);
    int m = i % period;
    return m < n ? m : period - m;
  }

  /** The image padded to {@link #paddedHeight} × {@link #paddedWidth} (see the class notes). */
  public RgbImage pad(RgbImage image) {
    if (image.height != height || image.width != width) {
      throw new IllegalArgumentException(
          "image is " + image.height + "x" + image.width + ", tiler was made for " + height + "x"
              + width);
    }
    if (paddedHeight == height && paddedWidth == width) {
      return image;
    }
    RgbImage out = new RgbImage(paddedHeight, paddedWidth);
    for (int y = 0; y < paddedHeight; y++) {
      int sy = reflectIndex(y, height);
      for (int x = 0; x < paddedWidth; x++) {
        int sx = reflectIndex(x, width);
        System.arraycopy(image.data, (sy * width + sx) * 3, out.data, (y * paddedWidth + x) * 3, 3);
      }
    }
    return out;
  }

  /** Copies the tile at ({@code y}, {@code x}) of a padded image into {@code dst} (HWC floats). */
  public void cut(RgbImage padded, int y, int x, float[] dst) {
    int row = tileWidth * 3;
    for (int r = 0; r < tileHeight; r++) {
      System.arraycopy(padded.data, ((y + r) * padded.width + x) * 3, dst, r * row, row);
    }
  }
}
