package org.tfderain.core;

import java.nio.ByteBuffer;

/**
 * Float ↔ tensor element conversion per a tensor's dtype, scale and zero point.
 *
 * <p>Rounding rules, chosen to be those of TensorFlow Lite's reference kernels (the {@code
 * QUANTIZE} and {@code DEQUANTIZE} ops, {@code tensorflow/lite/kernels/internal/reference}):
 *
 * <ul>
 *   <li>Quantize: {@code q = clamp(round(x / scale) + zero_point, min, max)} where the division
 *       is done in double ({@code (double) x / (double) scale}) and {@code round} rounds half away
 *       from zero ({@code std::round}); {@code min, max} = 0, 255 (uint8) or -128, 127 (int8).
 *   <li>Dequantize: {@code x = (float) (q - zero_point) * scale}, one float32 multiplication —
 *       the same float as TFLite's {@code (float) (scale * (q - zero_point))} in double, because
 *       that double product is exact.
 *   <li>float32 tensors pass values through unchanged.
 * </ul>
 *
 * Buffers hold elements in the buffer's byte order (native order for LiteRT).
 */
public final class Quantizer {
  private Quantizer() {}

  /** {@code round(v)} with ties away from zero, exactly ({@code std::round}). */
  public static double roundHalfAwayFromZero(double v) {
    double a = Math.abs(v);
    double f = Math.floor(a);
    double r = (a - f >= 0.5) ? f + 1.0 : f; // a - f is exact
    return Math.copySign(r, v);
  }

  /** One value quantized to {@code dtype}'s integer range. */
  public static int quantize(float x, float scale, int zeroPoint, DType dtype) {
    double v = roundHalfAwayFromZero((double) x / (double) scale) + zeroPoint;
    if (v != v) {
      return Math.max(dtype.min, Math.min(dtype.max, zeroPoint));
    }
    return (int) Math.max(dtype.min, Math.min(dtype.max, v));
  }

  /** One quantized value back to float. */
  public static float dequantize(int q, float scale, int zeroPoint) {
    return (float) (q - zeroPoint) * scale;
  }

  /** Writes {@code values} into {@code dst} (from its position) as {@code tensor}'s elements. */
  public static void encode(float[] values, ModelSpec.Tensor tensor, ByteBuffer dst) {
    switch (tensor.dtype) {
      case FLOAT32:
        for (float v : values) {
          dst.putFloat(v);
        }
        break;
      case UINT8:
      case INT8:
        for (float v : values) {
          dst.put((byte) quantize(v, tensor.scale, tensor.zeroPoint, tensor.dtype));
        }
        break;
      default:
        throw new IllegalStateException("unhandled dtype " + tensor.dtype);
    }
  }

  /** Reads {@code out.length} elements of {@code tensor} from {@code src} (from its position). */
  public static void decode(ByteBuffer src, ModelSpec.Tensor tensor, float[] out) {
    switch (tensor.dtype) {
      case FLOAT32:
        for (int i = 0; i < out.length; i++) {
          out[i] = src.getFloat();
        }
        break;
      case UINT8:
        for (int i = 0; i < out.length; i++) {
          out[i] = dequantize(src.get() & 0xff, tensor.scale, tensor.zeroPoint);
        }
        break;
      case INT8:
        for (int i = 0; i < out.length; i++) {
          out[i] = dequantize(src.get(), tensor.scale, tensor.zeroPoint);
        }
        break;
      default:
        throw new IllegalStateException("unhandled dtype " + tensor.dtype);
    }
  }
}
