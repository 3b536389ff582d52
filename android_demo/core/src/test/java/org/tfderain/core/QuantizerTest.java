package org.tfderain.core;

import static org.junit.Assert.assertEquals;

import java.util.Map;
import org.junit.Test;

public class QuantizerTest {
  @Test
  public void quantizationEqualsThePythonWriter() throws Exception {
    Map<String, Object> cases = Golden.json(Golden.dir().resolve("tiling.json"));
    for (Object item : Golden.list(cases.get("quantize"))) {
      Map<String, Object> c = Golden.map(item);
      float scale = (float) (double) (Double) c.get("scale");
      int zp = Golden.integer(c.get("zero_point"));
      DType dtype = DType.parse((String) c.get("dtype"), "test");
      float[] x = Golden.floats(c.get("x"));
      int[] q = Golden.ints(c.get("q"));
      float[] back = Golden.floats(c.get("dequantized"));
      for (int i = 0; i < x.length; i++) {
        String where = dtype + " scale=" + scale + " zp=" + zp + " x=" + x[i];
        assertEquals(where, q[i], Quantizer.quantize(x[i], scale, zp, dtype));
        assertEquals(
            where,
            Float.floatToIntBits(back[i]),
            Float.floatToIntBits(Quantizer.dequantize(q[i], scale, zp)));
      }
    }
  }

  @Test
  public void tiesRoundAwayFromZeroAndValuesClamp() {
    assertEquals(1, Quantizer.quantize(0.5f, 1f, 0, DType.UINT8));
    assertEquals(3, Quantizer.quantize(2.5f, 1f, 0, DType.UINT8));
    assertEquals(-3, Quantizer.quantize(-2.5f, 1f, 0, DType.INT8));
    assertEquals(0, Quantizer.quantize(-0.5f, 1f, 0, DType.UINT8));
    assertEquals(255, Quantizer.quantize(2f, 1f / 255f, 0, DType.UINT8));
    assertEquals(-128, Quantizer.quantize(-1f, 1f / 255f, -128, DType.INT8));
    assertEquals(0.0, Quantizer.roundHalfAwayFromZero(0.49999999999999994), 0.0);
  }

  @Test
  public void eightBitLevelsSurviveTheUnitScale() {
    // uint8 input with scale 1/255 (float32) and zero point 0 must give back the original byte.
    float scale = 1f / 255f;
    for (int u = 0; u < 256; u++) {
      float x = (float) u / 255f;
      assertEquals(u, Quantizer.quantize(x, scale, 0, DType.UINT8));
      assertEquals(u, RgbImage.toByteLevel(x));
    }
  }

  @Test
  public void encodeAndDecodeUseTheTensorType() {
    String spec = SpecFixtures.spec("uint8", "{\"scale\": 0.5, \"zero_point\": 10}");
    ModelSpec s = ModelSpec.parse(spec, "test.json");
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(2);
    Quantizer.encode(new float[] {1f, 2.25f}, s.input, b);
    assertEquals(12, b.get(0) & 0xff); // 1 / 0.5 + 10
    assertEquals(15, b.get(1) & 0xff); // round(4.5) = 5, + 10
    b.rewind();
    float[] out = new float[2];
    Quantizer.decode(b, s.derained, out);
    assertEquals(1f, out[0], 0f);
    assertEquals(2.5f, out[1], 0f);
  }
}
