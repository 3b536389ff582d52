package org.tfderain.demo

import android.annotation.SuppressLint
import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.RectF
import android.util.AttributeSet
import android.view.MotionEvent
import android.view.View
import kotlin.math.min

/**
 * Shows two images of the same size on top of each other, fitted to the view: [before] left of
 * a vertical divider, [after] right of it. Dragging moves the divider.
 */
class BeforeAfterView @JvmOverloads constructor(
    context: Context,
    attrs: AttributeSet? = null,
) : View(context, attrs) {
    private var before: Bitmap? = null
    private var after: Bitmap? = null
    private var split = 0.5f // divider position as a fraction of the image width
    private val dst = RectF()
    private val bitmapPaint = Paint(Paint.FILTER_BITMAP_FLAG)
    private val linePaint = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        color = Color.WHITE
        strokeWidth = 3f * resources.displayMetrics.density
    }
    private val knobPaint = Paint(Paint.ANTI_ALIAS_FLAG).apply { color = Color.WHITE }

    fun setImages(before: Bitmap?, after: Bitmap?) {
        this.before = before
        this.after = after
        contentDescription = if (after == null) "Photo" else "Photo before and after deraining"
        invalidate()
    }

    override fun onDraw(canvas: Canvas) {
        val image = before ?: return
        val scale = min(width.toFloat() / image.width, height.toFloat() / image.height)
        val w = image.width * scale
        val h = image.height * scale
        dst.set((width - w) / 2, (height - h) / 2, (width + w) / 2, (height + h) / 2)
        canvas.drawBitmap(image, null, dst, bitmapPaint)
        val restored = after ?: return
        val x = dst.left + split * dst.width()
        canvas.save()
        canvas.clipRect(x, dst.top, dst.right, dst.bottom)
        canvas.drawBitmap(restored, null, dst, bitmapPaint)
        canvas.restore()
        canvas.drawLine(x, dst.top, x, dst.bottom, linePaint)
        canvas.drawCircle(x, dst.centerY(), 10f * resources.displayMetrics.density, knobPaint)
    }

    @SuppressLint("ClickableViewAccessibility")
    override fun onTouchEvent(event: MotionEvent): Boolean {
        if (after == null || dst.width() <= 0f) return false
        when (event.actionMasked) {
            MotionEvent.ACTION_DOWN, MotionEvent.ACTION_MOVE -> {
                parent?.requestDisallowInterceptTouchEvent(true)
                split = ((event.x - dst.left) / dst.width()).coerceIn(0f, 1f)
                invalidate()
                return true
            }
        }
        return super.onTouchEvent(event)
    }
}
