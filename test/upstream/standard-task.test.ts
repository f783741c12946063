import { expect } from 'chai';
import { asStandardTask, asV1Task, isStandardTask } from '../../lib/upstream/standard.js';

describe("upstream: a standard-family task read in v1's words", () => {
  it('maps the id, status, message, times and external id', () => {
    const task = asV1Task({ id: '893605946402811985', status: 'succeeded', message: '', create_time: 1, update_time: 2, external_id: 'kr-video-1-abc', outputs: [], billing: [] });
    expect(task).to.deep.equal({ task_id: '893605946402811985', task_status: 'succeed', task_status_msg: '', created_at: 1, updated_at: 2, task_info: { external_task_id: 'kr-video-1-abc' } });
    expect(asV1Task({ id: '1', status: 'processing' })).to.include({ task_status: 'processing' });
    expect(asV1Task({ id: '1', status: 'failed', message: 'risk control' })).to.include({ task_status: 'failed', task_status_msg: 'risk control' });
  });

  it('reads outputs as task_result and billing as the deductions', () => {
    const task = asV1Task({
      id: '1',
      status: 'succeeded',
      outputs: [
        { type: 'video', id: 'v', url: 'https://x/v.mp4', watermark_url: 'https://x/v-wm.mp4', duration: '5.1' },
        { type: 'image', url: 'https://x/i.png', watermark_url: '' },
        { type: 'audio', id: 'a', mp3_url: 'https://x/a.mp3', wav_url: 'https://x/a.wav', mp3_duration: '3', wav_duration: '3' },
      ],
      billing: [
        { charge_type: 'unit', amount: '0.8', package_type: 'video' },
        { charge_type: 'unit', amount: '0.1', package_type: 'audio' },
        { charge_type: 'cash', cash_type: 'balance', amount: '0.7', currency: 'USD', list_price: '1.4' },
      ],
    });
    expect(task.task_result).to.deep.equal({
      videos: [{ id: 'v', url: 'https://x/v.mp4', watermark_url: 'https://x/v-wm.mp4', duration: '5.1' }],
      images: [{ index: 0, url: 'https://x/i.png', watermark_url: '' }],
      audios: [{ id: 'a', url_mp3: 'https://x/a.mp3', url_wav: 'https://x/a.wav', duration_mp3: '3', duration_wav: '3' }],
    });
    expect(task).to.include({ final_unit_deduction: '0.9' });
    expect(task.final_balance_deduction).to.deep.equal({ quota: '0.7', list_price: '1.4', currency: 'USD', cash_type: 'balance' });
  });

  it('keeps the currency and cash type of cash entries only where they agree', () => {
    const task = asV1Task({
      id: '1',
      status: 'succeeded',
      billing: [
        { charge_type: 'cash', cash_type: 'balance', amount: '0.7', currency: 'USD', list_price: '1.4' },
        { charge_type: 'cash', cash_type: 'balance', amount: '5', currency: 'CNY', list_price: '10' },
      ],
    });
    expect(task.final_balance_deduction).to.deep.equal({ quota: '5.7', list_price: '11.4', cash_type: 'balance' });
  });

  it('tells a standard callback body from a v1 one', () => {
    expect(isStandardTask({ id: '1', status: 'submitted', outputs: [], message: '' })).to.equal(true);
    expect(isStandardTask({ task_id: '1', task_status: 'submitted' })).to.equal(false);
  });

  it('reads back: a standard task shown from its v1 words is the task Kling sent', () => {
    const kling = {
      id: '1',
      status: 'succeeded',
      message: '',
      create_time: 1,
      update_time: 2,
      external_id: 'mine',
      outputs: [{ type: 'video', id: 'v', url: 'https://x/v.mp4', duration: '5.1' }],
      billing: [
        { charge_type: 'unit', amount: '1', package_type: 'video' },
        { charge_type: 'cash', cash_type: 'test_balance', amount: '0.7', currency: 'CNY', list_price: '1.4' },
      ],
    };
    expect(asStandardTask(asV1Task(kling))).to.deep.equal(kling);
    expect(asStandardTask({ task_id: '2', task_status: 'failed', task_status_msg: 'risk', created_at: 1, updated_at: 2, task_info: {} })).to.deep.equal({
      id: '2',
      status: 'failed',
      message: 'risk',
      create_time: 1,
      update_time: 2,
      outputs: [],
      billing: [],
    });
  });
});
