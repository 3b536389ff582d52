package org.tfderain.core;

import static org.junit.Assert.assertEquals;

import java.util.Map;
import org.junit.Test;

public class BlenderTest {
  @Test
  public void windowsEqualThePythonWriterBitForBit() throws Exception {
    Map<String, Object> cases = Golden.json(Golden.dir().resolve("tiling.json"));
    for (Object item : Golden.list(cases.get("windows"))) {
      Map<String, Object> c = Golden.map(item);
      java.util.List<Object> a = Golden.list(c.get("args"));
      int size = Golden.integer(a.get(0));
      int halo = Golden.integer(a.get(1));
      boolean start = (Boolean) a.get(2);
      boolean end = (Boolean) a.get(3);
      float[] expected = Golden.floats(c.get("values"));
      float[] actual = Blender.window(size, halo, start, end);
      for (int i = 0; i < size; i++) {
        assertEquals(
            a + " at " + i,
            Float.floatToIntBits(expected[i]),
            Float.floatToIntBits(actual[i]));
      }
    }
  }

  @Test
  public void windowShapeFollowsTheDocumentedRule() {
    // halo 8: zero for the first halo/2 = 4 pixels, one from pixel 12 on, 0.5 at the middle.
    float[] w = Blender.window(32, 8, true, false);
    assertEquals(0f, w[3], 0f);
    assertEquals(1f, w[12], 0f);
    assertEquals(1f, w[31], 0f);
    assertEquals(0.5f, (w[7] + w[8]) / 2f, 1e-6f); // symmetric around distance 8
    float[] both = Blender.window(32, 8, true, true);
    assertEquals(0f, both[28], 0f);
    assertEquals(both[10], both[21], 0f);
  }

  @Test
  public void overlappingCopiesOfOneImageBlendBackToIt() {
    Tiler t = new Tiler(40, 40, 24, 24, 1, 4);
    RgbImage img = new RgbImage(40, 40);
    for (int i = 0; i < img.data.length; i++) {
      img.data[i] = (i % 97) / 97f;
    }
    Blender b = new Blender(t);
    float[] tile = new float[24 * 24 * 3];
    for (int y : t.ys) {
      for (int x : t.xs) {
        t.cut(img, y, x, tile);
        b.add(tile, y, x);
      }
    }
    float[] out = b.result().data;
    for (int i = 0; i < out.length; i++) {
      assertEquals(img.data[i], out[i], 1e-6f);
    }
  }
}
