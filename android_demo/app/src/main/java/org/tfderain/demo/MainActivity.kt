package org.tfderain.demo

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.os.Build
import android.os.Bundle
import android.view.View
import android.widget.Toast
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.activity.viewModels
import androidx.appcompat.app.AppCompatActivity
import androidx.core.content.ContextCompat
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import kotlinx.coroutines.launch
import org.tfderain.demo.databinding.ActivityMainBinding

/**
 * One screen: pick a photo (Photo Picker) or take one (CameraX), derain it with the bundled int8
 * QAT PReNet (or the fp16 one, or the density-aware model when bundled), on the CPU or the GPU,
 * compare before/after with a slider, and save the result to the gallery.
 */
class MainActivity : AppCompatActivity() {
    private lateinit var binding: ActivityMainBinding
    private val viewModel: DerainViewModel by viewModels()

    private val pickPhoto =
        registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
            if (uri != null) viewModel.open(uri)
        }

    private val takePhoto =
        registerForActivityResult(ActivityResultContracts.StartActivityForResult()) { result ->
            val uri = result.data?.data
            if (result.resultCode == RESULT_OK && uri != null) viewModel.open(uri)
        }

    private val storagePermission =
        registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
            if (granted) save() else toast(getString(R.string.storage_permission_denied))
        }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        binding = ActivityMainBinding.inflate(layoutInflater)
        setContentView(binding.root)

        binding.prenet.visibility =
            if (ModelAssets.isAvailable(this, ModelAssets.PRENET_VARIANT)) View.VISIBLE else View.GONE
        binding.density.visibility =
            if (ModelAssets.isAvailable(this, ModelAssets.DENSITY_VARIANT)) View.VISIBLE else View.GONE
        binding.pick.setOnClickListener {
            pickPhoto.launch(
                PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly),
            )
        }
        binding.camera.setOnClickListener {
            takePhoto.launch(Intent(this, CameraActivity::class.java))
        }
        binding.derain.setOnClickListener { viewModel.derain(selectedVariant(), selectedAccelerator()) }
        binding.save.setOnClickListener { saveWithPermission() }
        // The model switches exclude each other; none checked is the default model.
        val modelSwitches = listOf(binding.fp16, binding.prenet, binding.density)
        for (toggle in modelSwitches) {
            toggle.setOnCheckedChangeListener { _, checked ->
                if (checked) modelSwitches.filter { it !== toggle }.forEach { it.isChecked = false }
            }
        }

        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                viewModel.state.collect { render(it) }
            }
        }
    }

    private fun selectedVariant(): String = when {
        binding.density.isChecked -> ModelAssets.DENSITY_VARIANT
        binding.prenet.isChecked -> ModelAssets.PRENET_VARIANT
        binding.fp16.isChecked -> ModelAssets.FP16_VARIANT
        else -> ModelAssets.INT8_VARIANT
    }

    private fun selectedAccelerator(): Accelerator =
        if (binding.gpu.isChecked) Accelerator.GPU else Accelerator.CPU

    private fun render(state: UiState) {
        val busy = state is UiState.Loading || state is UiState.Running
        binding.progress.visibility = if (busy) View.VISIBLE else View.GONE
        binding.derain.isEnabled = !busy && state !is UiState.Empty &&
            !(state is UiState.Failed && state.before == null)
        binding.save.isEnabled = state is UiState.Done
        when (state) {
            UiState.Empty -> {
                binding.compare.setImages(null, null)
                binding.status.setText(R.string.status_empty)
            }
            is UiState.Loading -> binding.status.text = state.what
            is UiState.Ready -> {
                binding.compare.setImages(state.before, null)
                binding.status.text = getString(R.string.status_ready, state.before.width, state.before.height)
            }
            is UiState.Running -> {
                binding.compare.setImages(state.before, null)
                binding.status.text = if (state.total == 0) {
                    getString(R.string.status_loading_model)
                } else {
                    getString(R.string.status_running, state.done, state.total)
                }
            }
            is UiState.Done -> {
                binding.compare.setImages(state.before, state.after)
                val lines = mutableListOf(
                    getString(
                        R.string.status_done,
                        state.millis,
                        state.engineMillis,
                        state.tiles,
                        state.variant,
                        state.accelerator.name,
                    ),
                )
                state.fallbackReason?.let { lines += getString(R.string.status_fallback, it) }
                state.density?.let {
                    val level = resources.getStringArray(R.array.density_levels)[ModelAssets.densityLevel(it)]
                    lines += getString(R.string.status_density, it, level)
                }
                binding.status.text = lines.joinToString("\n")
            }
            is UiState.Failed -> {
                binding.compare.setImages(state.before, null)
                binding.status.text = state.message
            }
        }
    }

    private fun saveWithPermission() {
        if (Build.VERSION.SDK_INT < Build.VERSION_CODES.Q &&
            ContextCompat.checkSelfPermission(this, Manifest.permission.WRITE_EXTERNAL_STORAGE) !=
            PackageManager.PERMISSION_GRANTED
        ) {
            storagePermission.launch(Manifest.permission.WRITE_EXTERNAL_STORAGE)
        } else {
            save()
        }
    }

    private fun save() = viewModel.save(::toast)

    private fun toast(message: String) = Toast.makeText(this, message, Toast.LENGTH_LONG).show()
}
