package org.tfderain.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.CancellationException;

/**
 * Derains an image of any size with a fixed-tile model: pad ({@link Tiler}), cut each tile,
 * encode it ({@link Quantizer}), run it ({@link Engine}), decode the {@code derained} output and
 * blend ({@link Blender}). Tiles run one at a time, so memory is the image, the accumulator and
 * one tile.
 *
 * <p>For density-aware models, {@link Result#density} is the mean over tiles of each element of
 * the decoded {@code density} output (double accumulation, in tile order).
 */
public final class TiledDerainer {
  /** Told after each tile; returning false cancels the run ({@link CancellationException}). */
  public interface Progress {
    boolean onTile(int done, int total);
  }

  /** Outcome of {@link #run}. */
  public static final class Result {
    public final RgbImage image;
    /** Mean density output over tiles, or null for models that are not density-aware. */
    public final float[] density;

    public final int tiles;
    /** Time spent inside {@link Engine#run}, nanoseconds. */
    public final long engineNanos;

    Result(RgbImage image, float[] density, int tiles, long engineNanos) {
      this.image = image;
      this.density = density;
      this.tiles = tiles;
      this.engineNanos = engineNanos;
    }
  }

  private final ModelSpec spec;
  private final Engine engine;

  public TiledDerainer(ModelSpec spec, Engine engine) {
    if (!spec.hasFixedTile()) {
      throw new IllegalArgumentException(spec.source + ": the app needs a fixed tile size");
    }
    this.spec = spec;
    this.engine = engine;
  }

  /** The input tensor bytes of one float tile (HWC), in native byte order. */
  public ByteBuffer encodeTile(float[] tile) {
    ByteBuffer buffer = ByteBuffer.allocateDirect(spec.input.bytes()).order(ByteOrder.nativeOrder());
    Quantizer.encode(tile, spec.input, buffer);
    buffer.rewind();
    return buffer;
  }

  /** Derains {@code image}; {@code progress} may be null. */
  public Result run(RgbImage image, Progress progress) throws Exception {
    Tiler tiler = Tiler.forSpec(spec, image.height, image.width);
    RgbImage padded = tiler.pad(image);
    Blender blender = new Blender(tiler);
    float[] tile = new float[tiler.tileHeight * tiler.tileWidth * 3];
    float[] prediction = new float[tile.length];
    ByteBuffer input = ByteBuffer.allocateDirect(spec.input.bytes()).order(ByteOrder.nativeOrder());
    ByteBuffer[] outputs = new ByteBuffer[spec.outputs.size()];
    for (ModelSpec.Tensor t : spec.outputs) {
      if (t.index < 0 || t.index >= outputs.length || outputs[t.index] != null) {
        throw new IllegalArgumentException(spec.source + ": bad output index " + t.index);
      }
      outputs[t.index] = ByteBuffer.allocateDirect(t.bytes()).order(ByteOrder.nativeOrder());
    }
    double[] densitySum = spec.density == null ? null : new double[spec.density.elements()];
    float[] density = spec.density == null ? null : new float[spec.density.elements()];
    long nanos = 0;
    int done = 0;
    int total = tiler.count();
    for (int y : tiler.ys) {
      for (int x : tiler.xs) {
        tiler.cut(padded, y, x, tile);
        input.clear();
        Quantizer.encode(tile, spec.input, input);
        input.rewind();
        for (ByteBuffer b : outputs) {
          b.clear();
        }
        long start = System.nanoTime();
        engine.run(input, outputs);
        nanos += System.nanoTime() - start;
        ByteBuffer out = outputs[spec.derained.index];
        out.rewind();
        Quantizer.decode(out, spec.derained, prediction);
        blender.add(prediction, y, x);
        if (density != null) {
          ByteBuffer d = outputs[spec.density.index];
          d.rewind();
          Quantizer.decode(d, spec.density, density);
          for (int i = 0; i < density.length; i++) {
            densitySum[i] += density[i];
          }
        }
        done++;
        if (progress != null && !progress.onTile(done, total)) {
          throw new CancellationException("deraining cancelled after " + done + " tiles");
        }
      }
    }
    if (density != null) {
      for (int i = 0; i < density.length; i++) {
        density[i] = (float) (densitySum[i] / total);
      }
    }
    return new Result(blender.result(), density, total, nanos);
  }
}
