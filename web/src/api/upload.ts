/**
 * `POST /api/v1/upload` with progress: `fetch` cannot report an upload's progress, so this one
 * request goes through `XMLHttpRequest`. The answer is typed by the generated schema.
 */
import type { components } from './schema'

export type Attachment = components['schemas']['AttachmentView']
type ErrorBody = components['schemas']['ErrorBody']

export class UploadFailed extends Error {}

/** Uploads `file` with `token`; `progress` gets the fraction sent, 0 to 1. */
export function upload(file: File, token: string, progress: (sent: number) => void): Promise<Attachment> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest()
    request.open('POST', '/api/v1/upload')
    request.setRequestHeader('Authorization', `Bearer ${token}`)
    request.responseType = 'json'
    request.upload.onprogress = (event) => event.lengthComputable && progress(event.loaded / event.total)
    request.onload = () => {
      if (request.status === 201) return resolve(request.response as Attachment)
      const body = request.response as ErrorBody | null
      reject(new UploadFailed(body?.error.message ?? `upload failed (${request.status})`))
    }
    request.onerror = () => reject(new UploadFailed('the upload did not reach the server'))
    const form = new FormData()
    form.append('file', file, file.name)
    request.send(form)
  })
}
